"""VELOC_Init / VELOC_Init_single (the INI file → a Checkpointer), VELOC_Finalize,
VELOC_Route_file (unsupported)."""

from __future__ import annotations

import sys

from .. import _ffi, options, process
from .. import codes as C
from ..codes import CapiError
from .session import require, reset, state


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
    open_checkpointer(cfg, process.mpi_comm(fcomm, "VELOC_Init"), single=None)


def init_single(ident, cfg_p):
    """VELOC_Init_single: this process alone, no MPI (VeloC's standalone mode)."""
    if process.current() is not None:
        raise CapiError(C.ESTATE, "VELOC_Init_single: vlcc is already initialized in this "
                                  "process (VELOC_Init or vlcc_init was called before)")
    cfg = parse_config(_ffi.string(cfg_p, "cfg_file"))
    from ...comm.serial import SerialComm
    open_checkpointer(cfg, SerialComm(), single=int(ident))


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


def open_checkpointer(cfg: dict, comm, single) -> None:
    kw = {"mode": cfg.get("mode", "sync"), "local_dir": cfg.get("scratch") or None}
    kw.update({k: cfg[k] for k in ("memory_budget", "chunk_size") if k in cfg})
    kw.update(redundancy_options(cfg))
    from ...checkpointer import Checkpointer
    process.opened(Checkpointer(cfg["persistent"], comm=comm, **kw))
    reset(cfg, single)


def route_file(orig_p, routed_p):
    require()
    orig = _ffi.string(orig_p, "original", null_ok=True)
    raise CapiError(C.EUNSUPPORTED,
                    f"VELOC_Route_file({orig!r}): file-based checkpoints are not supported by "
                    f"vlcc's VeloC API; protect the data with VELOC_Mem_protect (or "
                    f"VELOC_Mem_protect_dist for N->M restart) instead")


def finalize(cleanup):
    ck = require()
    try:
        if state["ckpt"] is not None:
            sys.stderr.write("VELOC_Finalize: a checkpoint begun with VELOC_Checkpoint_begin was "
                             "never ended; it is discarded\n")
        ck.close()         # commits what async mode still flushes; no daemon to wait for
    finally:
        reset()
        process.detach()
