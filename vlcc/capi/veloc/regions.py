"""Protected memory regions (VELOC_Mem_protect[_dist], VELOC_Region_*): kept per
checkpoint name, registered into the Checkpointer as ``veloc/<id>`` providers
only for the checkpoint or restart that uses them."""

from __future__ import annotations

import numpy as np

from .. import _ffi
from .. import codes as C
from ..codes import CapiError
from .session import PREFIX, check_id, require, set_name, state


def _view(r: dict, nbytes: int | None = None) -> np.ndarray:
    n = r["nbytes"] if nbytes is None else nbytes
    d = r["dist"]
    if d is None:
        return _ffi.view(r["ptr"], n)
    return _ffi.view(r["ptr"], n, np.dtype(C.DTYPES[d["dtype"]]), d["shape"])


def mem_protect(i, ptr, count, base_size):
    region_protect(i, ptr, count, base_size, _ffi.ffi.NULL)


def region_protect(i, ptr, count, base_size, name_p):
    require()
    what = "VELOC_Region_protect" if not _ffi.is_null(name_p) else "VELOC_Mem_protect"
    name = set_name(name_p, what)
    check_id(i)
    if _ffi.is_null(ptr) and count * base_size:
        raise CapiError(C.EINVAL, f"{what}({i}): ptr is NULL")
    if base_size == 0:
        raise CapiError(C.EINVAL, f"{what}({i}): base_size is 0")
    state["sets"].setdefault(name, {})[int(i)] = dict(ptr=_ffi.address(ptr), nbytes=int(count * base_size),
                                  count=int(count), base_size=int(base_size), dist=None)


def mem_protect_dist(i, ptr, dtype, ndim, shape_p, gshape_p, off_p, halo):
    require()
    check_id(i)
    _ffi.check_buffer(f"VELOC_Mem_protect_dist({i})", ptr, "ptr", dtype, ndim, 1, halo)
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
    state["sets"][""][int(i)] = dict(ptr=_ffi.address(ptr),
                                  nbytes=int(np.prod(shape, dtype=np.int64)) * itemsize,
                                  count=int(np.prod(shape, dtype=np.int64)), base_size=itemsize,
                                  dist=dict(dtype=int(dtype), shape=shape, gshape=gshape,
                                            offset=off, halo=int(halo)))


def mem_unprotect(i):
    region_unprotect(i, _ffi.ffi.NULL)


def region_unprotect(i, name_p):
    ck = require()
    what = "VELOC_Region_unprotect" if not _ffi.is_null(name_p) else "VELOC_Mem_unprotect"
    name = set_name(name_p, what)
    regions = state["sets"].get(name, {})
    if int(i) not in regions:
        where = f" of checkpoint {name!r}" if name else ""
        raise CapiError(C.EPROVIDER, f"{what}({i}): region {i}{where} is not protected")
    del regions[int(i)]
    _drop_stale(ck)


def region_clear(name_p):
    """VELOC_Region_clear(name) / VELOC_Mem_clear() (name NULL): forget every region of the
    set; clearing an empty set succeeds, as in VeloC."""
    ck = require()
    name = set_name(name_p, "VELOC_Region_clear" if not _ffi.is_null(name_p) else "VELOC_Mem_clear")
    state["sets"][name] = {}
    _drop_stale(ck)


def _drop_stale(ck) -> None:
    """Unregister providers whose region is no longer protected in any set, so the
    Checkpointer never holds a view of memory the program may now free."""
    live = {(i, r["ptr"]) for regs in state["sets"].values() for i, r in regs.items()}
    for i, key in list(state["registered"].items()):
        if (i, key[0]) not in live:             # key[0]: the region's pointer
            ck.unregister(f"{PREFIX}{i}")
            del state["registered"][i]


def _key(r: dict, nbytes: int) -> tuple:
    d = r["dist"]
    return (r["ptr"], nbytes) if d is None else \
        (r["ptr"], d["dtype"], d["shape"], d["gshape"], d["offset"], d["halo"])


def sync_providers(ck, want: dict, regions: dict) -> None:
    """Make the Checkpointer's veloc/* providers exactly ``want`` ({id: nbytes}) of
    ``regions``; a region whose pointer/shape did not change stays registered (keeps its
    dedup state)."""
    reg = state["registered"]
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
