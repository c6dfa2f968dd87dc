"""The state one Checkpointer shares between its write path (commit/) and
its read path (restore/): the private communicator, the repository, the
registered providers, the rank's writer and engine, and the lineage position
(branch, parent). ``Checkpointer`` is a thin public face over a Session."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..engine.engine import Engine
from ..repo.manifest import Version
from ..repo.paths import RepoPaths
from ..state.registry import State
from .rankwrite import RankWriter


@dataclass
class Session:
    comm: Any                     # vlcc's private communicator (comm/protocol.py)
    paths: RepoPaths
    mode: str                     # "sync" | "async"
    chunk_size: int
    state: State
    writer: RankWriter
    engine: Engine | None
    catalog: Any                  # rank 0: the repository catalog (vlcc.Repository); else None
    branch: str
    parent: str | None            # the next version's parent
    last_version: Version | None = None
    if_moved: str = "rebase"      # a branch moved under us: "rebase" onto the new head, or "fail"
    # rank 0: the head of ``head_branch`` as this writer last saw or set it; a
    # different head at commit time means another writer moved the branch
    head_seen: str | None = None
    head_branch: str | None = None
    compare: Any = None           # tools hook: a reference-run Comparator (vlcc/tools/compare.py)
    # async with MPI_THREAD_MULTIPLE: the flusher thread's own duplicate of
    # ``comm`` (its collectives never interleave with the application's);
    # None: the flusher calls no MPI and the application's thread agrees/commits
    flush_comm: Any = None

    @property
    def rank(self) -> int:
        return self.comm.rank

    @property
    def size(self) -> int:
        return self.comm.size
