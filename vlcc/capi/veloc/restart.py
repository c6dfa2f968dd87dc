"""VELOC_Restart_test / _begin / VELOC_Recover_mem / _selective / _size /
VELOC_Restart_end: find the version of checkpoint ``name``, restore the regions."""

from __future__ import annotations

import numpy as np

from .. import _ffi
from .. import codes as C
from ..codes import CapiError
from .regions import sync_providers
from .session import FAILURE, PREFIX, active, branch_of, check_name, require, selection, state


def _find(ck, name: str, version: int, below: bool):
    """Rank 0 reads, all ranks get: the manifest of version ``version`` (or, with ``below``,
    of the newest version with step < version; version 0 = no bound) on branch ``name``."""
    from ...comm.protocol import root_only
    from ...errors import NotFoundError
    from ...repository import Repository

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
    ck = require()
    name = _ffi.string(name_p, "name")
    check_name(name, version, "VELOC_Restart_test")
    ck.wait()    # a version of this run that is still being flushed counts too
    m = _find(ck, branch_of(name), int(version), below=True)
    out_p[0] = FAILURE if m is None else int(m["step"])


def restart_begin(name_p, version):
    ck = require()
    name = _ffi.string(name_p, "name")
    check_name(name, version, "VELOC_Restart_begin")
    if state["ckpt"] is not None:
        raise CapiError(C.ESTATE, "VELOC_Restart_begin: a checkpoint is in progress")
    ck.wait()
    m = _find(ck, branch_of(name), int(version), below=False)
    if m is None:
        raise CapiError(C.ENOTFOUND, f"VELOC_Restart_begin: checkpoint {name!r} has no version "
                                     f"{version} in {ck.path}")
    if ck.branch_name != branch_of(name):
        ck.switch(branch_of(name))      # the next checkpoints continue the restored branch
    state["restart"] = {"name": name, "version": int(version), "manifest": m, "done": set()}


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
    from ...errors import ShapeMismatchError
    from ...repo.paths import RepoPaths
    from ...restore.reader import VersionReader
    r = VersionReader(RepoPaths(ck.path), m)
    try:
        return int(r.pick_rank_block(f"{PREFIX}{i}", ck.rank, ck.size)["nbytes"])
    except ShapeMismatchError:
        return -1
    finally:
        r.close()


def recover_selective(mode, ids_p, n):
    ck = require()
    rs = state["restart"]
    if rs is None:
        raise CapiError(C.ESTATE, "VELOC_Recover_mem: call VELOC_Restart_begin first")
    m = rs["manifest"]
    stored = _stored(m)
    regions = active(rs["name"])
    sel = selection(mode, ids_p, n, stored, "VELOC_Recover_selective")
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
    sync_providers(ck, want, regions)
    ck.restore(m["id"], strict=False)
    rs["done"] |= set(want)


def recover_size(i, out_p):
    """*out = bytes saved under region ``i`` that this rank restores (plain regions), the
    bytes of the whole global array (distributed regions), or -1 (not in the version)."""
    ck = require()
    rs = state["restart"]
    if rs is None:
        raise CapiError(C.ESTATE, "VELOC_Recover_size: call VELOC_Restart_begin first")
    e = _stored(rs["manifest"]).get(int(i))
    out_p[0] = -1 if e is None else _stored_nbytes(ck, rs["manifest"], int(i), e)


def restart_end(success):
    require()
    if state["restart"] is None:
        raise CapiError(C.ESTATE, "VELOC_Restart_end: no restart in progress")
    state["restart"] = None
