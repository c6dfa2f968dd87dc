"""VELOC_Checkpoint_begin / _mem / _selective / _end (the version is captured and
committed at _end(1) on every rank), _wait, _finished, VELOC_Cleanup."""

from __future__ import annotations

from .. import _ffi
from .. import codes as C
from ..codes import CapiError
from .regions import sync_providers
from .session import active, branch_of, check_name, require, selection, state


def checkpoint_begin(name_p, version):
    require()
    name = _ffi.string(name_p, "name")
    check_name(name, version, "VELOC_Checkpoint_begin")
    if state["ckpt"] is not None:
        raise CapiError(C.ESTATE, "VELOC_Checkpoint_begin: a checkpoint is already in progress "
                                  "(call VELOC_Checkpoint_end first)")
    if state["restart"] is not None:
        raise CapiError(C.ESTATE, "VELOC_Checkpoint_begin: a restart is in progress "
                                  "(call VELOC_Restart_end first)")
    state["ckpt"] = {"name": name, "version": int(version), "ids": None}


def checkpoint_selective(mode, ids_p, n):
    require()
    c = state["ckpt"]
    if c is None:
        raise CapiError(C.ESTATE, "VELOC_Checkpoint_mem: call VELOC_Checkpoint_begin first")
    regions = active(c["name"])
    sel = selection(mode, ids_p, n, regions, "VELOC_Checkpoint_selective")
    if not sel:
        raise CapiError(C.EPROVIDER, "VELOC_Checkpoint_mem: no protected memory region selected "
                                     "(call VELOC_Mem_protect or VELOC_Region_protect first)")
    c["ids"] = sorted(set(c["ids"] or ()) | set(sel))
    c["regions"] = {**(c.get("regions") or {}), **{i: regions[i] for i in sel}}


def checkpoint_end(success):
    ck = require()
    c = state["ckpt"]
    state["ckpt"] = None
    from ...comm.protocol import all_true
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
    branch = branch_of(c["name"])
    if ck.branch_name != branch:
        # Checkpointer.switch reads the branch ref on disk: versions of the branch still
        # flushing (async) must be committed first, or the new version's parent is wrong.
        ck.wait()
        ck.switch(branch, create=True)
    sync_providers(ck, {i: c["regions"][i]["nbytes"] for i in c["ids"]}, c["regions"])
    ck.checkpoint(step=c["version"], message=f"VELOC_Checkpoint {c['name']} {c['version']}",
                  attrs={"veloc": {"name": c["name"], "version": c["version"]}})
    return C.OK


def checkpoint_wait():
    require().wait()


def checkpoint_finished(out_p):
    """*out = 1 when every checkpoint of this rank is out of its hands (sync mode: always;
    async mode: this rank's background writes to the repository are finished; the version
    becomes visible at the next collective call), 0 while they run. Local, non-blocking.
    A checkpoint still between begin and end is an error, as in VeloC."""
    ck = require()
    if state["ckpt"] is not None:
        raise CapiError(C.ESTATE, "VELOC_Checkpoint_finished: a checkpoint is in progress "
                                  "(call VELOC_Checkpoint_end first)")
    out_p[0] = 1 if ck.mode == "sync" or ck.stats.get("unflushed", ck.stats["pending"]) == 0 else 0


def cleanup(name_p):
    """VELOC_Cleanup(name): remove this process's node-local (scratch) copies of checkpoint
    ``name``'s committed versions; the repository keeps every version. Local."""
    ck = require()
    name = _ffi.string(name_p, "name")
    check_name(name, 0, "VELOC_Cleanup")
    if state["ckpt"] is not None and state["ckpt"]["name"] == name:
        raise CapiError(C.ESTATE, f"VELOC_Cleanup: checkpoint {name!r} is in progress "
                                  f"(call VELOC_Checkpoint_end first)")
    from ...checkpointer import session
    eng = session(ck).engine
    local = eng.local                           # the node-local tier exists in async mode only
    if local is None:
        return
    from ...repository import Repository
    from ...errors import NotFoundError
    branch = branch_of(name)
    busy = {p.vid for p in eng.pending}         # still being flushed from scratch: keep
    try:
        versions = Repository(ck.path).log(branch)
    except NotFoundError:
        return
    for v in versions:
        if v.branch == branch and v.id not in busy:
            eng.drop_local(v.id)
