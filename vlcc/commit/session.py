"""The state one Checkpointer shares between its write path (commit/) and
its read path (restore/): the private communicator, the repository, the
registered providers, the rank's writer and engine, and the lineage position
(branch, parent). ``Checkpointer`` is a thin public face over a Session.

The lineage fields are written by the application's thread (checkpoint,
restore, switch, commits at collective calls) and, in async mode with a
flusher communicator, by the flusher thread (rank 0's commit records the head
it set). So they are read-only attributes, changed only by the methods below,
each under one lock; the branch heads this writer has seen are kept per
branch, so a commit on one branch never overwrites what a ``switch`` recorded
for another."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from ..comm.protocol import release
from ..engine.engine import Engine
from ..repo.manifest import Version
from ..repo.paths import RepoPaths
from ..state.registry import State
from .rankwrite import RankWriter

_UNSEEN = object()


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
    if_moved: str = "rebase"      # a branch moved under us: "rebase" onto the new head, or "fail"
    compare: Any = None           # tools hook: a reference-run Comparator (vlcc/tools/compare.py)
    # async with MPI_THREAD_MULTIPLE: the flusher thread's own duplicate of
    # ``comm`` (its collectives never interleave with the application's);
    # None: the flusher calls no MPI and the application's thread agrees/commits
    flush_comm: Any = None
    # -- lineage: read freely, written only by the methods below (under _lock)
    _branch: str = "main"
    _parent: str | None = None    # the next version's parent
    _last_version: Version | None = None
    # rank 0: branch -> its head as this writer last saw or set it; a different
    # head at commit time means another writer moved the branch
    _seen: dict = field(default_factory=dict)
    _lock: Any = field(default_factory=threading.Lock, repr=False)

    @property
    def rank(self) -> int:
        return self.comm.rank

    @property
    def size(self) -> int:
        return self.comm.size

    branch = property(lambda self: self._branch)
    parent = property(lambda self: self._parent)
    last_version = property(lambda self: self._last_version)

    # -- lineage moves ---------------------------------------------------------------
    def release_comms(self) -> None:
        """At close, after the engine stopped: free the writer's node
        communicator, the flusher's and vlcc's own duplicate."""
        self.writer.release()
        release(self.flush_comm)
        release(self.comm)

    def opened(self, branch: str, head: str | None) -> None:
        """The Checkpointer starts on ``branch`` whose head is ``head``."""
        with self._lock:
            self._branch, self._parent = branch, head
            self._seen[branch] = head

    def switched(self, branch: str, parent: str | None, head=_UNSEEN) -> None:
        """Next versions go to ``branch`` with ``parent``; ``head``: the branch
        head just read (not given: this writer's own pending version is newer)."""
        with self._lock:
            self._branch, self._parent = branch, parent
            if head is not _UNSEEN:
                self._seen[branch] = head

    def seen_head(self, branch: str, default: str | None) -> str | None:
        """Rank 0: the head of ``branch`` as last seen or set (``default`` if never)."""
        with self._lock:
            return self._seen.get(branch, default)

    def head_set(self, branch: str, vid: str) -> None:
        """Rank 0 (either thread): ``vid`` was committed and is ``branch``'s head."""
        with self._lock:
            self._seen[branch] = vid

    def issued(self, v: Version) -> None:
        """A checkpoint made ``v`` (committed, or pending in async mode): the
        next version's parent."""
        with self._lock:
            self._parent, self._last_version = v.id, v

    def accepted(self, doc: dict) -> None:
        """A pending version was committed: ``last_version`` is no longer pending."""
        with self._lock:
            if self._last_version is None or self._last_version.id == doc["id"]:
                self._last_version = Version.from_manifest(doc)

    def rewound(self, vid: str | None, version: Version | None = None) -> None:
        """The next version's parent is ``vid`` (a restore, an abandoned
        pending version, vlcc.adjoint rewinding); ``version``: restored."""
        with self._lock:
            self._parent = vid
            if version is not None:
                self._last_version = version

    def pending_head(self, branch: str) -> str | None:
        """This writer's newest pending (async, uncommitted) version on ``branch``."""
        eng = self.engine
        mine = [p.vid for p in (eng.pending if eng is not None else ()) if p.branch == branch]
        return mine[-1] if mine else None
