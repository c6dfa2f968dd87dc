"""Engine settings: keyword arguments, else environment variables, else defaults.

The variables (``VLCC_MODE``, ``VLCC_MEMORY_BUDGET``, ``VLCC_LOCAL_DIR``,
``VLCC_LOCAL_STAGE``, ``VLCC_LOCAL_BUDGET``, ``VLCC_KEEP_LAST``, ``VLCC_FLUSH_MPI``, ``VLCC_REDUNDANCY``,
``VLCC_GROUP_SIZE``, ``VLCC_PERSIST``, ``VLCC_LOCAL_KEEP``) are declared
with their defaults in vlcc/settings.py (one table, shown in
docs/architecture.md "Settings").

With redundancy or a ``persist`` other than ``always`` and no local dir given,
the node stores go to ``/dev/shm/vlcc-<uid>-nodes`` (or the temp dir): not the
per-job default base, since a restart (a new job) must find them.

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
from dataclasses import dataclass, field

from .. import settings
from ..errors import ArgumentError
from ..units import parse_bytes
from .resilience.codes import Scheme, parse

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
    redundancy: Scheme = field(default_factory=lambda: parse("none"))
    persist: float | None = 0.0      # seconds between persisted versions; None: never
    keep_local: int = 2              # versions kept in the node stores (node-local mode)
    local_explicit: bool = False     # local_dir given (keyword or VLCC_LOCAL_DIR)

    @property
    def node_local(self) -> bool:
        """Are versions kept in per-node stores that outlive the process
        (redundancy, or versions that may commit before they are persisted)?"""
        return self.redundancy.kind != "none" or self.persist != 0.0

    @classmethod
    def resolve(cls, mode=None, memory_budget=None, local_dir=None, redundancy=None,
                group_size=None, persist=None) -> "EngineConfig":
        scheme = parse(redundancy if redundancy is not None else settings.get("VLCC_REDUNDANCY"),
                       group_size if group_size is not None else settings.get("VLCC_GROUP_SIZE") or None)
        every = parse_persist(persist if persist is not None else settings.get("VLCC_PERSIST"))
        keep_n = int(settings.get("VLCC_LOCAL_KEEP"))
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
        explicit = (local_dir if local_dir is not None else settings.get("VLCC_LOCAL_DIR")) not in (None, "")
        flush_mpi = settings.flag("VLCC_FLUSH_MPI")
        if scheme.kind != "none" or every != 0.0:
            what = (f"redundancy={scheme.spec!r}" if scheme.kind != "none"
                    else f"persist={persist if persist is not None else settings.get('VLCC_PERSIST')!r}")
            if mode != "async":
                raise ArgumentError(f"{what} needs mode='async' (the flusher thread encodes)")
            if ld is None:
                raise ArgumentError(f"{what} needs the node-local tier (local_dir='none' was given)")
            if not explicit:
                # not the per-job default base: node stores must outlive the job
                ld = os.path.join(os.path.dirname(ld), f"vlcc-{os.getuid()}-nodes")
            stage = True
        keep = settings.get("VLCC_KEEP_LAST").strip().lower()
        keep_last = None if keep == "auto" else keep not in settings.FALSE
        return cls(mode=mode, memory_budget=budget, local_dir=ld, local_budget=spill,
                   flush_mpi=flush_mpi, stage_local=stage, keep_last=keep_last, redundancy=scheme,
                   persist=every, keep_local=max(1, keep_n), local_explicit=explicit)


def parse_persist(value) -> float | None:
    """``"always"`` → 0 s, ``"never"`` → None, seconds (``30``, ``"30"``, ``"30s"``) between
    persisted versions."""
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("always", "", "0"):
            return 0.0
        if v == "never":
            return None
        try:
            value = float(v[:-1] if v.endswith("s") else v)
        except ValueError:
            raise ArgumentError(f"persist={value!r}: use 'always', 'never' or seconds between "
                                f"persisted versions") from None
    if isinstance(value, bool) or value is None or not isinstance(value, (int, float)) or value < 0:
        raise ArgumentError(f"persist={value!r}: use 'always', 'never' or seconds between "
                            f"persisted versions")
    return float(value)
