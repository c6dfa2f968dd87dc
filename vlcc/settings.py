"""Every ``VLCC_*`` environment variable vlcc reads, in one table: its
default and what it does. Modules read them through :func:`get` / :func:`flag`
(at the moment of use: a test or a launcher may change the environment), never
``os.environ`` directly; docs/architecture.md "Settings" shows this table and
tests/test_architecture.py checks that both agree."""

from __future__ import annotations

import os
from typing import NamedTuple


class Setting(NamedTuple):
    name: str
    default: str | None
    doc: str


TABLE = (
    Setting("VLCC_MODE", "sync", "`sync` or `async` (keyword `mode`)"),
    Setting("VLCC_MEMORY_BUDGET", "1GiB", "bytes of the memory tier per rank (keyword `memory_budget`)"),
    Setting("VLCC_LOCAL_DIR", None, "the node-local tier (keyword `local_dir`; `none`: off); unset: "
            "async spills to `/dev/shm/vlcc-<uid>-<job>` (or the temp dir)"),
    Setting("VLCC_LOCAL_STAGE", None, "`1`: every async version goes through the local tier; default "
            "`1` when a local dir was given, else `0`"),
    Setting("VLCC_LOCAL_BUDGET", None, "bytes of spilled captures in the local tier (default: the "
            "memory budget)"),
    Setting("VLCC_KEEP_LAST", "0", "sync: `1` also copies each checkpoint's state into the memory "
            "tier beside the write (a restore right after reads memory); `auto`: only with a spare "
            "CPU; `0`: off"),
    Setting("VLCC_REDUNDANCY", None, "the node-local tier's protection against node loss: `none`, "
            "`partner`, `xor`, `rs:K+M` (keyword `redundancy`; engine/resilience/)"),
    Setting("VLCC_GROUP_SIZE", None, "nodes per XOR group (keyword `group_size`; default 8)"),
    Setting("VLCC_PERSIST", "always", "`always`: every version reaches the persistent tier before it "
            "commits; `never`: node-local only; seconds between persisted versions (keyword `persist`)"),
    Setting("VLCC_LOCAL_KEEP", "2", "versions kept in the node stores (with redundancy or persist "
            "other than `always`)"),
    Setting("VLCC_FLUSH_MPI", "auto", "`0`: the flusher thread calls no MPI (the application's "
            "thread agrees and commits)"),
    Setting("VLCC_DIRECT_IO", "1", "`0`: data.0 is written through the page cache, not O_DIRECT"),
    Setting("VLCC_MAP_READS", "1", "`0`: restores never read through a mapping of data.0 (the "
            "SIGBUS guard of io/busguard.py is not built)"),
    Setting("VLCC_CACHE_DIR", None, "where compiled helpers are cached (default "
            "`$XDG_CACHE_HOME/vlcc` or `~/.cache/vlcc`)"),
    Setting("VLCC_GATHER_MAX", None, "bytes of a new gather buffer (default: an eighth of "
            "MemAvailable; above it the flush reads pieces in place)"),
    Setting("VLCC_NODE_FILES", "1", "`0`: one data file per rank instead of one per node (format "
            "3's layout, docs/format.md 3.4; for comparisons and as a way out)"),
    Setting("VLCC_NODE_ID", None, "an integer node id per rank: simulates nodes on one machine "
            "(comm/nodes.py)"),
    Setting("VLCC_RESTORE", None, "`vlcc replay`: the version a new Checkpointer starts from"),
    Setting("VLCC_REPLAY_REPO", None, "`vlcc replay`: the repository VLCC_RESTORE applies to"),
    Setting("VLCC_BRANCH", None, "`vlcc replay`: the replay branch (default `replay/<version>`)"),
    Setting("VLCC_CC", None, "the MPI C compiler wrapper for libvlcc and C programs"),
    Setting("VLCC_FC", None, "the MPI Fortran compiler wrapper"),
    Setting("VLCC_MPIEXEC", None, "the MPI launcher of that MPI"),
)
SETTINGS = {s.name: s for s in TABLE}
FALSE = ("0", "no", "off", "false")


def get(name: str, default: str | None = None) -> str | None:
    """The variable's value, else ``default``, else the table's default. An
    undeclared name is a KeyError: every variable is in the table."""
    s = SETTINGS[name]
    v = os.environ.get(name)
    if v is not None:
        return v
    return default if default is not None else s.default


def is_set(name: str) -> bool:
    return SETTINGS[name] is not None and os.environ.get(name) is not None


def flag(name: str, default: str | None = None) -> bool:
    """True unless the value is one of ``0/no/off/false``."""
    return str(get(name, default)).strip().lower() not in FALSE
