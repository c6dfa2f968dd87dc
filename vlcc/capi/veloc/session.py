"""The VeloC API's state in this process (the protected regions by checkpoint
name, what is registered, the checkpoint or restart in progress, the
configuration) and the checks every VeloC call shares."""

from __future__ import annotations

import re

from .. import _ffi, process
from .. import codes as C
from ..codes import CapiError

FAILURE = -1
RECOVER_ALL, RECOVER_SOME, RECOVER_REST = 0, 1, 2
PREFIX = "veloc/"
NAME = re.compile(r"^[A-Za-z0-9_.]+$")     # VeloC's rule for checkpoint names

# sets: region-set name ("" = VELOC_Mem_protect's) -> {id -> dict(ptr=int, nbytes=int, count,
#       base_size, dist=None|dict(dtype, shape, gshape, offset, halo))};
# registered: id -> key of what is registered in the Checkpointer; single: Init_single's id
state: dict = {"sets": {"": {}}, "registered": {}, "ckpt": None, "restart": None, "cfg": None,
               "single": None}


def reset(cfg=None, single=None) -> None:
    state.update(sets={"": {}}, registered={}, ckpt=None, restart=None, cfg=cfg, single=single)


def active(name: str) -> dict:
    """The regions a checkpoint/restart of ``name`` uses (VeloC: the set registered under
    ``name`` when it has any, else the unnamed set)."""
    named = state["sets"].get(name)
    return named if named else state["sets"].setdefault("", {})


def branch_of(name: str) -> str:
    """The vlcc branch of checkpoint ``name`` (Init_single: qualified by the process id)."""
    return name if state["single"] is None else f"{name}.{state['single']}"


def require():
    ck = process.current()
    if ck is None or state["cfg"] is None:
        raise CapiError(C.ESTATE, "VeloC API not initialized: call VELOC_Init first")
    return ck


def check_id(i: int) -> None:
    if i < 0:
        raise CapiError(C.EINVAL, f"region id {i} is negative")


def set_name(name_p, what: str) -> str:
    name = _ffi.string(name_p, "name", null_ok=True) or ""
    if name and not NAME.match(name):
        raise CapiError(C.EINVAL, f"{what}: checkpoint name {name!r} may only contain "
                                  f"[A-Za-z0-9_.]")
    return name


def check_name(name: str, version: int, what: str) -> None:
    if not NAME.match(name or ""):
        raise CapiError(C.EINVAL, f"{what}: checkpoint name {name!r} may only contain "
                                  f"[A-Za-z0-9_.]")
    if version < 0:
        raise CapiError(C.EINVAL, f"{what}: version {version} is negative")


def selection(mode: int, ids_p, n: int, universe, what: str) -> list[int]:
    ids = set(_ffi.ints(ids_p, n, "ids", null_ok=True) or ()) if n > 0 else set()
    if mode == RECOVER_ALL:
        return sorted(universe)
    if mode == RECOVER_SOME:
        return sorted(i for i in universe if i in ids)
    if mode == RECOVER_REST:
        return sorted(i for i in universe if i not in ids)
    raise CapiError(C.EINVAL, f"{what}: unknown mode {mode} (use 0 ALL, 1 SOME, 2 REST)")
