"""Engine settings: keyword arguments, else environment variables, else defaults.

The variables (``VLCC_MODE``, ``VLCC_MEMORY_BUDGET``, ``VLCC_LOCAL_DIR``,
``VLCC_LOCAL_STAGE``, ``VLCC_LOCAL_BUDGET``, ``VLCC_KEEP_LAST``, ``VLCC_FLUSH_MPI``) are declared
with their defaults in vlcc/settings.py (one table, shown in
docs/architecture.md "Settings").

Why the default local tier only takes spills: /dev/shm is RAM, like the
memory tier that already holds every captured version until it is flushed;
writing each version there too cost a copy into fresh tmpfs pages and a
second copy at promotion (~100 ms of CPU per 64 MiB, measured by
benchmarks/bench_async.py), competing with the application for memory
bandwidth. A local dir given by the user (a node-local SSD) is a real middle
tier: versions go through it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass

from .. import settings
from ..errors import ArgumentError
from ..units import parse_bytes

def default_local_dir(need: int) -> str:
    job = os.environ.get("SLURM_JOB_ID") or f"p{os.getppid()}"
    name = f"vlcc-{os.getuid()}-{job}"
    shm = "/dev/shm"
    try:
        if os.path.isdir(shm) and shutil.disk_usage(shm).free > 2 * need:
            return os.path.join(shm, name)
    except OSError:
        pass
    return os.path.join(tempfile.gettempdir(), name)


@dataclass
class EngineConfig:
    mode: str = "sync"
    memory_budget: int = 1 << 30
    local_dir: str | None = None     # None: no local tier
    local_budget: int = 1 << 30      # bytes of captures spilled to the local tier at most
    flush_mpi: bool = True           # the flusher may run collectives (if the thread level allows)
    stage_local: bool = True         # versions are written to the local tier, then promoted
    keep_last: bool | None = False   # sync: copy each version to the memory tier (None: auto)

    @classmethod
    def resolve(cls, mode=None, memory_budget=None, local_dir=None) -> "EngineConfig":
        mode = mode or settings.get("VLCC_MODE")
        if mode not in ("sync", "async"):
            raise ArgumentError(f"unknown mode {mode!r}: use 'sync' or 'async'")
        budget = parse_bytes(memory_budget if memory_budget is not None
                             else settings.get("VLCC_MEMORY_BUDGET"), "memory_budget")
        ld = local_dir if local_dir is not None else settings.get("VLCC_LOCAL_DIR")
        stage = ld is not None
        if ld is None:
            ld = default_local_dir(budget) if mode == "async" else "none"
        stage = settings.flag("VLCC_LOCAL_STAGE", "1" if stage else "0")
        ld = None if str(ld).lower() in ("none", "off", "") else os.path.abspath(os.fspath(ld))
        spill = parse_bytes(settings.get("VLCC_LOCAL_BUDGET") or budget, "VLCC_LOCAL_BUDGET")
        flush_mpi = settings.flag("VLCC_FLUSH_MPI")
        keep = settings.get("VLCC_KEEP_LAST").strip().lower()
        keep_last = None if keep == "auto" else keep not in settings.FALSE
        return cls(mode=mode, memory_budget=budget, local_dir=ld, local_budget=spill,
                   flush_mpi=flush_mpi, stage_local=stage, keep_last=keep_last)
