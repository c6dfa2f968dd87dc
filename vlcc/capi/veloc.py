"""The Python side of the VeloC-compatible API (include/veloc.h, bindings/veloc.c).

VeloC's memory-based model maps onto vlcc like this:

* ``VELOC_Init(comm, cfg)``: the INI file's ``persistent`` is the repository,
  ``scratch`` the node-local tier (``Checkpointer(local_dir=...)``), ``mode`` =
  sync/async (``Checkpointer(mode=...)``). No backend process is started.
* ``VELOC_Init_single(id, cfg)``: a non-MPI process checkpoints alone, on the one-rank
  stand-in (vlcc.comm.serial, no MPI library needed); its checkpoint ``name`` is the branch
  ``<name>.<id>``, so processes sharing a repository never mix their checkpoints.
* a protected region ``id`` is the provider ``veloc/<id>``: raw bytes of one rank
  (``VELOC_Mem_protect``) or a block of a distributed array
  (``VELOC_Mem_protect_dist``, restorable on another rank count).
* regions by name, as VeloC: ``VELOC_Region_protect(id, ..., name)`` registers a region for
  checkpoint ``name`` only; a checkpoint or restart of ``name`` uses the regions registered
  under ``name`` if there are any, else the unnamed ones (``VELOC_Mem_protect``).
  ``VELOC_Region_unprotect``/``VELOC_Region_clear(name)`` and ``VELOC_Mem_unprotect``/
  ``VELOC_Mem_clear()`` forget them (stored versions are never touched).
* checkpoint ``name`` is a vlcc branch, ``version`` the version's step.
* the checkpoint is captured and committed at ``VELOC_Checkpoint_end(1)``; a
  ``VELOC_Checkpoint_end(0)`` on any rank discards it on all ranks.

Every function here is collective or local exactly as documented in veloc.h and
returns 0 or raises (the C wrapper turns an exception into VELOC_FAILURE and the
message into ``vlcc_last_error()``).
"""

from __future__ import annotations

import re
import sys

import numpy as np

from . import _ffi, options, process
from . import codes as C
from .codes import CapiError

FAILURE = -1
RECOVER_ALL, RECOVER_SOME, RECOVER_REST = 0, 1, 2
PREFIX = "veloc/"
_NAME = re.compile(r"^[A-Za-z0-9_.]+$")     # VeloC's rule for checkpoint names
# sets: region-set name ("" = VELOC_Mem_protect's) -> {id -> dict(ptr=int, nbytes=int, count,
#       base_size, dist=None|dict(dtype, shape, gshape, offset, halo))};
# registered: id -> key of what is registered in the Checkpointer; single: Init_single's id
_st: dict = {"sets": {"": {}}, "registered": {}, "ckpt": None, "restart": None, "cfg": None,
             "single": None}


def _active(name: str) -> dict:
    """The regions a checkpoint/restart of ``name`` uses (VeloC: the set registered under
    ``name`` when it has any, else the unnamed set)."""
    named = _st["sets"].get(name)
    return named if named else _st["sets"].setdefault("", {})


def _branch(name: str) -> str:
    """The vlcc branch of checkpoint ``name`` (Init_single: qualified by the process id)."""
    return name if _st["single"] is None else f"{name}.{_st['single']}"


def _ck():
    ck = process.current()
    if ck is None or _st["cfg"] is None:
        raise CapiError(C.ESTATE, "VeloC API not initialized: call VELOC_Init first")
    return ck


def parse_config(path: str) -> dict:
    """VeloC's INI file -> {'persistent', 'scratch', 'mode', 'memory_budget', 'chunk_size'}."""
    cfg = options.VELOC.parse_file(path)
    if not cfg.get("persistent"):
        raise CapiError(C.EINVAL, f"{path}: 'persistent = <path>' is required (the vlcc repository)")
    return cfg


def init(fcomm, cfg_p):
    if process.current() is not None:
        raise CapiError(C.ESTATE, "VELOC_Init: vlcc is already initialized in this process "
                                  "(VELOC_Init or vlcc_init was called before)")
    cfg = parse_config(_ffi.string(cfg_p, "cfg_file"))
    _open(cfg, process.mpi_comm(fcomm, "VELOC_Init"), single=None)


def init_single(ident, cfg_p):
    """VELOC_Init_single: this process alone, no MPI (VeloC's standalone mode)."""
    if process.current() is not None:
        raise CapiError(C.ESTATE, "VELOC_Init_single: vlcc is already initialized in this "
                                  "process (VELOC_Init or vlcc_init was called before)")
    cfg = parse_config(_ffi.string(cfg_p, "cfg_file"))
    from ..comm.serial import SerialComm
    _open(cfg, SerialComm(), single=int(ident))


def redundancy_options(cfg: dict) -> dict:
    """VeloC's keys for the node-local tier's protection → Checkpointer keywords
    (docs/capi.md): ``ec_interval`` ≥ 0 turns erasure coding on (every version is
    encoded; ``redundancy = partner|xor|rs:K+M`` picks the code, default xor), −1
    off; ``persistent_interval`` 0 → persist always, −1 → never, N → every N s."""
    kw: dict = {}
    ec = cfg.get("ec_interval")
    if "redundancy" in cfg:
        kw["redundancy"] = cfg["redundancy"]
    elif ec is not None and ec >= 0:
        kw["redundancy"] = "xor"
    if ec is not None and ec < 0:
        kw["redundancy"] = "none"
    if "group_size" in cfg:
        kw["group_size"] = cfg["group_size"]
    pi = cfg.get("persistent_interval")
    if pi is not None:
        kw["persist"] = "never" if pi < 0 else ("always" if pi == 0 else float(pi))
    return kw


def _open(cfg: dict, comm, single) -> None:
    kw = {"mode": cfg.get("mode", "sync"), "local_dir": cfg.get("scratch") or None}
    kw.update({k: cfg[k] for k in ("memory_budget", "chunk_size") if k in cfg})
    kw.update(redundancy_options(cfg))
    from ..checkpointer import Checkpointer
    process.opened(Checkpointer(cfg["persistent"], comm=comm, **kw))
    _st.update(sets={"": {}}, registered={}, ckpt=None, restart=None, cfg=cfg, single=single)


def _view(r: dict, nbytes: int | None = None) -> np.ndarray:
    n = r["nbytes"] if nbytes is None else nbytes
    d = r["dist"]
    if d is None:
        return _ffi.view(r["ptr"], n)
    return _ffi.view(r["ptr"], n, np.dtype(C.DTYPES[d["dtype"]]), d["shape"])


def _check_id(i: int) -> None:
    if i < 0:
        raise CapiError(C.EINVAL, f"region id {i} is negative")


def _set_name(name_p, what: str) -> str:
    name = _ffi.string(name_p, "name", null_ok=True) or ""
    if name and not _NAME.match(name):
        raise CapiError(C.EINVAL, f"{what}: checkpoint name {name!r} may only contain "
                                  f"[A-Za-z0-9_.]")
    return name


def mem_protect(i, ptr, count, base_size):
    region_protect(i, ptr, count, base_size, _ffi.ffi.NULL)


def region_protect(i, ptr, count, base_size, name_p):
    _ck()
    what = "VELOC_Region_protect" if not _ffi.is_null(name_p) else "VELOC_Mem_protect"
    name = _set_name(name_p, what)
    _check_id(i)
    if _ffi.is_null(ptr) and count * base_size:
        raise CapiError(C.EINVAL, f"{what}({i}): ptr is NULL")
    if base_size == 0:
        raise CapiError(C.EINVAL, f"{what}({i}): base_size is 0")
    _st["sets"].setdefault(name, {})[int(i)] = dict(ptr=_ffi.address(ptr), nbytes=int(count * base_size),
                                  count=int(count), base_size=int(base_size), dist=None)


def mem_protect_dist(i, ptr, dtype, ndim, shape_p, gshape_p, off_p, halo):
    _ck()
    _check_id(i)
    if _ffi.is_null(ptr):
        raise CapiError(C.EINVAL, f"VELOC_Mem_protect_dist({i}): ptr is NULL")
    if dtype not in C.DTYPES:
        raise CapiError(C.EINVAL, f"VELOC_Mem_protect_dist({i}): unknown vlcc_dtype {dtype}")
    if not 1 <= ndim <= 32:
        raise CapiError(C.EINVAL, f"VELOC_Mem_protect_dist({i}): ndim {ndim} is not in 1..32")
    if halo < 0:
        raise CapiError(C.EINVAL, f"VELOC_Mem_protect_dist({i}): negative halo {halo}")
    shape = _ffi.ints(shape_p, ndim, f"VELOC_Mem_protect_dist({i}): local_shape")
    gshape = _ffi.ints(gshape_p, ndim, f"VELOC_Mem_protect_dist({i}): global_shape")
    off = _ffi.ints(off_p, ndim, "offset", null_ok=True) or (0,) * ndim
    if any(n < 0 for n in shape):
        raise CapiError(C.EINVAL, f"VELOC_Mem_protect_dist({i}): negative extent in {shape}")
    for d in range(ndim):
        own = shape[d] - 2 * halo
        if own < 0 or off[d] < 0 or off[d] + own > gshape[d]:
            raise CapiError(C.EINVAL, f"VELOC_Mem_protect_dist({i}): block (offset {off}, "
                                      f"local shape {shape}, halo {halo}) is outside the global "
                                      f"shape {gshape}")
    itemsize = np.dtype(C.DTYPES[dtype]).itemsize
    _st["sets"][""][int(i)] = dict(ptr=_ffi.address(ptr),
                                  nbytes=int(np.prod(shape, dtype=np.int64)) * itemsize,
                                  count=int(np.prod(shape, dtype=np.int64)), base_size=itemsize,
                                  dist=dict(dtype=int(dtype), shape=shape, gshape=gshape,
                                            offset=off, halo=int(halo)))


def mem_unprotect(i):
    region_unprotect(i, _ffi.ffi.NULL)


def region_unprotect(i, name_p):
    ck = _ck()
    what = "VELOC_Region_unprotect" if not _ffi.is_null(name_p) else "VELOC_Mem_unprotect"
    name = _set_name(name_p, what)
    regions = _st["sets"].get(name, {})
    if int(i) not in regions:
        where = f" of checkpoint {name!r}" if name else ""
        raise CapiError(C.EPROVIDER, f"{what}({i}): region {i}{where} is not protected")
    del regions[int(i)]
    _drop_stale(ck)


def region_clear(name_p):
    """VELOC_Region_clear(name) / VELOC_Mem_clear() (name NULL): forget every region of the
    set; clearing an empty set succeeds, as in VeloC."""
    ck = _ck()
    name = _set_name(name_p, "VELOC_Region_clear" if not _ffi.is_null(name_p) else "VELOC_Mem_clear")
    _st["sets"][name] = {}
    _drop_stale(ck)


def _drop_stale(ck) -> None:
    """Unregister providers whose region is no longer protected in any set, so the
    Checkpointer never holds a view of memory the program may now free."""
    live = {(i, r["ptr"]) for regs in _st["sets"].values() for i, r in regs.items()}
    for i, key in list(_st["registered"].items()):
        if (i, key[0]) not in live:             # key[0]: the region's pointer
            ck.unregister(f"{PREFIX}{i}")
            del _st["registered"][i]


def _key(r: dict, nbytes: int) -> tuple:
    d = r["dist"]
    return (r["ptr"], nbytes) if d is None else \
        (r["ptr"], d["dtype"], d["shape"], d["gshape"], d["offset"], d["halo"])


def _sync(ck, want: dict, regions: dict) -> None:
    """Make the Checkpointer's veloc/* providers exactly ``want`` ({id: nbytes}) of
    ``regions``; a region whose pointer/shape did not change stays registered (keeps its
    dedup state)."""
    reg = _st["registered"]
    for i in list(reg):
        r = regions.get(i)
        if i not in want or r is None or reg[i] != _key(r, want[i]):
            ck.unregister(f"{PREFIX}{i}")
            del reg[i]
    for i, nbytes in want.items():
        if i in reg:
            continue
        r = regions[i]
        d = r["dist"]
        arr = _view(r, nbytes)
        if d is None:
            ck.register(f"{PREFIX}{i}", arr)
        else:
            ck.register(f"{PREFIX}{i}", arr, global_shape=d["gshape"], offset=d["offset"],
                        halo=d["halo"])
        reg[i] = _key(r, nbytes)


def _check_name(name: str, version: int, what: str) -> None:
    if not _NAME.match(name or ""):
        raise CapiError(C.EINVAL, f"{what}: checkpoint name {name!r} may only contain "
                                  f"[A-Za-z0-9_.]")
    if version < 0:
        raise CapiError(C.EINVAL, f"{what}: version {version} is negative")


def _selection(mode: int, ids_p, n: int, universe, what: str) -> list[int]:
    ids = set(_ffi.ints(ids_p, n, "ids", null_ok=True) or ()) if n > 0 else set()
    if mode == RECOVER_ALL:
        return sorted(universe)
    if mode == RECOVER_SOME:
        return sorted(i for i in universe if i in ids)
    if mode == RECOVER_REST:
        return sorted(i for i in universe if i not in ids)
    raise CapiError(C.EINVAL, f"{what}: unknown mode {mode} (use 0 ALL, 1 SOME, 2 REST)")


# -- checkpoint ------------------------------------------------------------------------
def checkpoint_begin(name_p, version):
    _ck()
    name = _ffi.string(name_p, "name")
    _check_name(name, version, "VELOC_Checkpoint_begin")
    if _st["ckpt"] is not None:
        raise CapiError(C.ESTATE, "VELOC_Checkpoint_begin: a checkpoint is already in progress "
                                  "(call VELOC_Checkpoint_end first)")
    if _st["restart"] is not None:
        raise CapiError(C.ESTATE, "VELOC_Checkpoint_begin: a restart is in progress "
                                  "(call VELOC_Restart_end first)")
    _st["ckpt"] = {"name": name, "version": int(version), "ids": None}


def checkpoint_selective(mode, ids_p, n):
    _ck()
    c = _st["ckpt"]
    if c is None:
        raise CapiError(C.ESTATE, "VELOC_Checkpoint_mem: call VELOC_Checkpoint_begin first")
    regions = _active(c["name"])
    sel = _selection(mode, ids_p, n, regions, "VELOC_Checkpoint_selective")
    if not sel:
        raise CapiError(C.EPROVIDER, "VELOC_Checkpoint_mem: no protected memory region selected "
                                     "(call VELOC_Mem_protect or VELOC_Region_protect first)")
    c["ids"] = sorted(set(c["ids"] or ()) | set(sel))
    c["regions"] = {**(c.get("regions") or {}), **{i: regions[i] for i in sel}}


def checkpoint_end(success):
    ck = _ck()
    c = _st["ckpt"]
    _st["ckpt"] = None
    from ..comm.protocol import all_true
    everyone = all_true(ck.comm, lambda: bool(success) and c is not None and c["ids"] is not None)
    if c is None:
        raise CapiError(C.ESTATE, "VELOC_Checkpoint_end: no checkpoint in progress")
    if not everyone:
        if success and c["ids"] is None:
            raise CapiError(C.ESTATE, "VELOC_Checkpoint_end: VELOC_Checkpoint_mem was not called "
                                      "(nothing captured); nothing was committed")
        if success:
            raise CapiError(C.ECOLLECTIVE, f"VELOC_Checkpoint_end: another rank ended checkpoint "
                                           f"{c['name']!r} version {c['version']} with success=0 "
                                           f"(or failed); nothing was committed")
        return C.OK          # success=0 everywhere: discarded, as asked
    branch = _branch(c["name"])
    if ck.branch_name != branch:
        # Checkpointer.switch reads the branch ref on disk: versions of the branch still
        # flushing (async) must be committed first, or the new version's parent is wrong.
        ck.wait()
        ck.switch(branch, create=True)
    _sync(ck, {i: c["regions"][i]["nbytes"] for i in c["ids"]}, c["regions"])
    ck.checkpoint(step=c["version"], message=f"VELOC_Checkpoint {c['name']} {c['version']}",
                  attrs={"veloc": {"name": c["name"], "version": c["version"]}})
    return C.OK


def checkpoint_wait():
    _ck().wait()


def checkpoint_finished(out_p):
    """*out = 1 when every checkpoint of this rank is out of its hands (sync mode: always;
    async mode: this rank's background writes to the repository are finished; the version
    becomes visible at the next collective call), 0 while they run. Local, non-blocking.
    A checkpoint still between begin and end is an error, as in VeloC."""
    ck = _ck()
    if _st["ckpt"] is not None:
        raise CapiError(C.ESTATE, "VELOC_Checkpoint_finished: a checkpoint is in progress "
                                  "(call VELOC_Checkpoint_end first)")
    out_p[0] = 1 if ck.mode == "sync" or ck.stats.get("unflushed", ck.stats["pending"]) == 0 else 0


def cleanup(name_p):
    """VELOC_Cleanup(name): remove this process's node-local (scratch) copies of checkpoint
    ``name``'s committed versions; the repository keeps every version. Local."""
    ck = _ck()
    name = _ffi.string(name_p, "name")
    _check_name(name, 0, "VELOC_Cleanup")
    if _st["ckpt"] is not None and _st["ckpt"]["name"] == name:
        raise CapiError(C.ESTATE, f"VELOC_Cleanup: checkpoint {name!r} is in progress "
                                  f"(call VELOC_Checkpoint_end first)")
    from ..checkpointer import session
    eng = session(ck).engine
    local = eng.local                           # the node-local tier exists in async mode only
    if local is None:
        return
    from ..repository import Repository
    from ..errors import NotFoundError
    branch = _branch(name)
    busy = {p.vid for p in eng.pending}         # still being flushed from scratch: keep
    try:
        versions = Repository(ck.path).log(branch)
    except NotFoundError:
        return
    for v in versions:
        if v.branch == branch and v.id not in busy:
            local.evict(v.id, ck.rank)


# -- restart -----------------------------------------------------------------------------
def _find(ck, name: str, version: int, below: bool):
    """Rank 0 reads, all ranks get: the manifest of version ``version`` (or, with ``below``,
    of the newest version with step < version; version 0 = no bound) on branch ``name``."""
    from ..comm.protocol import root_only
    from ..errors import NotFoundError
    from ..repository import Repository

    def look():
        repo = Repository(ck.path)
        try:
            log = repo.log(name)
        except NotFoundError:
            return None
        best = None
        for v in log:            # newest first along the branch's lineage
            if v.step is None or v.branch != name:
                continue         # ancestors on other branches belong to other names
            if below:
                if (version == 0 or v.step < version) and (best is None or v.step > best.step):
                    best = v
            elif v.step == version:
                best = v
                break
        return None if best is None else best.manifest
    return root_only(ck.comm, look)


def restart_test(name_p, version, out_p):
    """*out = the newest version < ``version`` (0: any) of checkpoint ``name``, or -1."""
    ck = _ck()
    name = _ffi.string(name_p, "name")
    _check_name(name, version, "VELOC_Restart_test")
    ck.wait()    # a version of this run that is still being flushed counts too
    m = _find(ck, _branch(name), int(version), below=True)
    out_p[0] = FAILURE if m is None else int(m["step"])


def restart_begin(name_p, version):
    ck = _ck()
    name = _ffi.string(name_p, "name")
    _check_name(name, version, "VELOC_Restart_begin")
    if _st["ckpt"] is not None:
        raise CapiError(C.ESTATE, "VELOC_Restart_begin: a checkpoint is in progress")
    ck.wait()
    m = _find(ck, _branch(name), int(version), below=False)
    if m is None:
        raise CapiError(C.ENOTFOUND, f"VELOC_Restart_begin: checkpoint {name!r} has no version "
                                     f"{version} in {ck.path}")
    if ck.branch_name != _branch(name):
        ck.switch(_branch(name))      # the next checkpoints continue the restored branch
    _st["restart"] = {"name": name, "version": int(version), "manifest": m, "done": set()}


def _stored(m: dict) -> dict[int, dict]:
    out = {}
    for pname, e in m["providers"].items():
        if pname.startswith(PREFIX) and pname[len(PREFIX):].isdigit():
            out[int(pname[len(PREFIX):])] = e
    return out


def _stored_nbytes(ck, m: dict, i: int, e: dict) -> int:
    """Bytes of region ``i`` (entry ``e`` of manifest ``m``) this rank restores
    (plain regions); -1 when they cannot be restored on this rank count."""
    if e["kind"] == "distributed":
        return int(np.prod(e["global_shape"], dtype=np.int64)) * np.dtype(e["dtype"]).itemsize
    from ..errors import ShapeMismatchError
    from ..repo.paths import RepoPaths
    from ..restore.reader import VersionReader
    r = VersionReader(RepoPaths(ck.path), m)
    try:
        return int(r.pick_rank_block(f"{PREFIX}{i}", ck.rank, ck.size)["nbytes"])
    except ShapeMismatchError:
        return -1
    finally:
        r.close()


def recover_selective(mode, ids_p, n):
    ck = _ck()
    rs = _st["restart"]
    if rs is None:
        raise CapiError(C.ESTATE, "VELOC_Recover_mem: call VELOC_Restart_begin first")
    m = rs["manifest"]
    stored = _stored(m)
    regions = _active(rs["name"])
    sel = _selection(mode, ids_p, n, stored, "VELOC_Recover_selective")
    want = {}
    for i in sel:
        e = stored[i]
        r = regions.get(i)
        if r is None:
            raise CapiError(C.EPROVIDER, f"VELOC_Recover_mem: version {m['step']} of checkpoint "
                                         f"{rs['name']!r} holds region {i}, which is not protected "
                                         f"(VELOC_Mem_protect it, or recover selectively)")
        dist = e["kind"] == "distributed"
        if dist != (r["dist"] is not None):
            raise CapiError(C.EMISMATCH, f"VELOC_Recover_mem: region {i} was saved "
                                         f"{'with' if dist else 'without'} VELOC_Mem_protect_dist "
                                         f"but is now protected "
                                         f"{'without' if dist else 'with'} it")
        if dist:
            want[i] = r["nbytes"]
            continue
        need = _stored_nbytes(ck, m, i, e)
        if need < 0:
            raise CapiError(C.EMISMATCH, f"VELOC_Recover_mem: region {i} was saved by "
                                         f"{m['nranks']} ranks with different bytes per rank; "
                                         f"it cannot be restored on {ck.size} ranks (protect it with "
                                         f"VELOC_Mem_protect_dist for N->M restart)")
        if r["nbytes"] < need:
            raise CapiError(C.EMISMATCH, f"VELOC_Recover_mem: protected region {i} has "
                                         f"{r['nbytes']} bytes, too small for the {need} bytes "
                                         f"saved (rank {ck.rank})")
        want[i] = need
    if not want:
        raise CapiError(C.EPROVIDER, "VELOC_Recover_mem: no region selected")
    _sync(ck, want, regions)
    ck.restore(m["id"], strict=False)
    rs["done"] |= set(want)


def recover_size(i, out_p):
    """*out = bytes saved under region ``i`` that this rank restores (plain regions), the
    bytes of the whole global array (distributed regions), or -1 (not in the version)."""
    ck = _ck()
    rs = _st["restart"]
    if rs is None:
        raise CapiError(C.ESTATE, "VELOC_Recover_size: call VELOC_Restart_begin first")
    e = _stored(rs["manifest"]).get(int(i))
    out_p[0] = -1 if e is None else _stored_nbytes(ck, rs["manifest"], int(i), e)


def restart_end(success):
    _ck()
    if _st["restart"] is None:
        raise CapiError(C.ESTATE, "VELOC_Restart_end: no restart in progress")
    _st["restart"] = None


def route_file(orig_p, routed_p):
    _ck()
    orig = _ffi.string(orig_p, "original", null_ok=True)
    raise CapiError(C.EUNSUPPORTED,
                    f"VELOC_Route_file({orig!r}): file-based checkpoints are not supported by "
                    f"vlcc's VeloC API; protect the data with VELOC_Mem_protect (or "
                    f"VELOC_Mem_protect_dist for N->M restart) instead")


def finalize(cleanup):
    ck = _ck()
    try:
        if _st["ckpt"] is not None:
            sys.stderr.write("VELOC_Finalize: a checkpoint begun with VELOC_Checkpoint_begin was "
                             "never ended; it is discarded\n")
        ck.close()         # commits what async mode still flushes; no daemon to wait for
    finally:
        _st.update(sets={"": {}}, registered={}, ckpt=None, restart=None, cfg=None, single=None)
        process.detach()


IMPL = {"init": init, "init_single": init_single, "mem_protect": mem_protect,
         "mem_protect_dist": mem_protect_dist, "mem_unprotect": mem_unprotect,
         "region_protect": region_protect, "region_unprotect": region_unprotect,
         "region_clear": region_clear, "checkpoint_finished": checkpoint_finished,
         "cleanup": cleanup, "checkpoint_begin": checkpoint_begin,
         "checkpoint_selective": checkpoint_selective, "checkpoint_end": checkpoint_end,
         "checkpoint_wait": checkpoint_wait, "restart_test": restart_test,
         "restart_begin": restart_begin, "recover_selective": recover_selective,
         "recover_size": recover_size, "restart_end": restart_end, "route_file": route_file,
         "finalize": finalize}

# The Python functions libvlcc calls (cffi embedding_api). Changing these needs a rebuild:
# touch bindings/veloc.c (its mtime makes `build_libvlcc.py --if-stale` rebuild).
DECLS = """
int _veloc_py_init(long long fcomm, const char *cfg);
int _veloc_py_mem_protect(int id, void *ptr, size_t count, size_t base_size);
int _veloc_py_mem_protect_dist(int id, void *ptr, int dtype, int ndim, const int64_t *local_shape,
                               const int64_t *global_shape, const int64_t *offset, int halo);
int _veloc_py_mem_unprotect(int id);
int _veloc_py_init_single(unsigned int id, const char *cfg);
int _veloc_py_region_protect(int id, void *ptr, size_t count, size_t base_size, const char *name);
int _veloc_py_region_unprotect(int id, const char *name);
int _veloc_py_region_clear(const char *name);
int _veloc_py_checkpoint_finished(int *out);
int _veloc_py_cleanup(const char *name);
int _veloc_py_checkpoint_begin(const char *name, int version);
int _veloc_py_checkpoint_selective(int mode, const int *ids, int n);
int _veloc_py_checkpoint_end(int success);
int _veloc_py_checkpoint_wait(void);
int _veloc_py_restart_test(const char *name, int version, int64_t *out);
int _veloc_py_restart_begin(const char *name, int version);
int _veloc_py_recover_selective(int mode, const int *ids, int n);
int _veloc_py_recover_size(int id, int64_t *out);
int _veloc_py_restart_end(int success);
int _veloc_py_route_file(const char *original, char *routed);
int _veloc_py_finalize(int cleanup);
"""

