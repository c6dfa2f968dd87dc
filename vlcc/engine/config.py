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
| redundancy     | ``redundancy``   | ``VLCC_REDUNDANCY``     | ``none``; ``partner``, ``xor``, ``rs:K+M`` protect the node-local tier against node loss (engine/resilience/) |
| XOR group size | ``group_size``   | ``VLCC_GROUP_SIZE``     | 8 nodes |
| persist        | ``persist``      | ``VLCC_PERSIST``        | ``always``: every version is copied to the persistent tier before it commits; ``never``: node-local tier only; a number: seconds between persisted versions |
| node-local versions kept | —      | ``VLCC_LOCAL_KEEP``     | 2 (with redundancy or persist other than ``always``: versions kept in the node stores) |

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
import re
import shutil
import tempfile
from dataclasses import dataclass, field

from ..errors import ArgumentError
from .resilience.codes import Scheme, parse

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
        env = os.environ
        scheme = parse(redundancy if redundancy is not None else env.get("VLCC_REDUNDANCY"),
                       group_size if group_size is not None else env.get("VLCC_GROUP_SIZE") or None)
        every = parse_persist(persist if persist is not None else env.get("VLCC_PERSIST", "always"))
        keep_n = int(env.get("VLCC_LOCAL_KEEP", 2))
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
        explicit = (local_dir if local_dir is not None else env.get("VLCC_LOCAL_DIR")) not in (None, "")
        flush_mpi = env.get("VLCC_FLUSH_MPI", "auto").strip().lower() not in ("0", "no", "off", "false")
        if scheme.kind != "none" or every != 0.0:
            what = (f"redundancy={scheme.spec!r}" if scheme.kind != "none"
                    else f"persist={persist if persist is not None else env.get('VLCC_PERSIST')!r}")
            if mode != "async":
                raise ArgumentError(f"{what} needs mode='async' (the flusher thread encodes)")
            if ld is None:
                raise ArgumentError(f"{what} needs the node-local tier (local_dir='none' was given)")
            if not explicit:
                # not the per-job default base: node stores must outlive the job
                ld = os.path.join(os.path.dirname(ld), f"vlcc-{os.getuid()}-nodes")
            stage = True
        keep = env.get("VLCC_KEEP_LAST", "0").strip().lower()
        keep_last = None if keep == "auto" else keep not in ("0", "no", "off", "false")
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
