"""Engine settings: keyword arguments, else environment variables, else defaults.

| setting        | keyword          | environment             | default |
| -------------- | ---------------- | ----------------------- | ------- |
| mode           | ``mode``         | ``VLCC_MODE``           | ``sync`` |
| memory budget  | ``memory_budget``| ``VLCC_MEMORY_BUDGET``  | 1 GiB per rank |
| local tier dir | ``local_dir``    | ``VLCC_LOCAL_DIR``      | ``/dev/shm/vlcc-<user>-<job>`` if /dev/shm has room, else the temp dir, for spill only (see below); ``none`` disables |
| write through local | —            | ``VLCC_LOCAL_STAGE``    | ``1`` when the local dir is given (keyword or environment): every version is written there first, then promoted; ``0`` with the default dir |
| spill budget   | —                | ``VLCC_LOCAL_BUDGET``   | the memory budget: captures the memory tier cannot hold go to the local tier up to this many bytes |
| keep last (sync) | —              | ``VLCC_KEEP_LAST``      | ``0``: off; ``1``: a sync checkpoint also copies its state into the memory tier, beside the write (a restore right after it then reads memory, not the disk its O_DIRECT write bypassed the page cache for; the copy is abandoned if the write finishes first); ``auto``: only while the process has a spare CPU |
| flusher MPI    | —                | ``VLCC_FLUSH_MPI``      | ``auto``: the flusher hashes, agrees and commits on its own communicator when MPI is at MPI_THREAD_MULTIPLE; ``0``: never (the application's thread does it) |

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
import re
import shutil
import tempfile
from dataclasses import dataclass

from ..errors import ArgumentError

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1000, "kib": 1 << 10, "m": 1 << 20, "mb": 10**6,
          "mib": 1 << 20, "g": 1 << 30, "gb": 10**9, "gib": 1 << 30, "t": 1 << 40, "tib": 1 << 40}


def parse_bytes(value, what: str) -> int:
    """``1073741824``, ``"512MiB"``, ``"2G"`` → bytes."""
    if isinstance(value, (int, float)):
        n = int(value)
    else:
        m = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", str(value))
        if not m or m.group(2).lower() not in _UNITS:
            raise ArgumentError(f"{what}: cannot parse size {value!r} (use e.g. 512MiB, 2GiB, 1000000)")
        n = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if n <= 0:
        raise ArgumentError(f"{what} must be positive, got {value!r}")
    return n


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
        env = os.environ
        mode = mode or env.get("VLCC_MODE") or "sync"
        if mode not in ("sync", "async"):
            raise ArgumentError(f"unknown mode {mode!r}: use 'sync' or 'async'")
        budget = parse_bytes(memory_budget if memory_budget is not None
                             else env.get("VLCC_MEMORY_BUDGET", 1 << 30), "memory_budget")
        ld = local_dir if local_dir is not None else env.get("VLCC_LOCAL_DIR")
        stage = ld is not None
        if ld is None:
            ld = default_local_dir(budget) if mode == "async" else "none"
        stage = env.get("VLCC_LOCAL_STAGE", "1" if stage else "0").strip().lower() \
            not in ("0", "no", "off", "false")
        ld = None if str(ld).lower() in ("none", "off", "") else os.path.abspath(os.fspath(ld))
        spill = parse_bytes(env.get("VLCC_LOCAL_BUDGET", budget), "VLCC_LOCAL_BUDGET")
        flush_mpi = env.get("VLCC_FLUSH_MPI", "auto").strip().lower() not in ("0", "no", "off", "false")
        keep = env.get("VLCC_KEEP_LAST", "0").strip().lower()
        keep_last = None if keep == "auto" else keep not in ("0", "no", "off", "false")
        return cls(mode=mode, memory_budget=budget, local_dir=ld, local_budget=spill,
                   flush_mpi=flush_mpi, stage_local=stage, keep_last=keep_last)
