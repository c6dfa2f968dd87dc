"""The engine of one Checkpointer on one rank: the memory tier, the optional
node-local tier, a flusher thread (capture copy → local → persistent) and a
prefetcher thread (persistent/local → memory, following the declared plan).

Neither thread calls MPI. Versions flushed by every rank are committed by
the Checkpointer in the application thread (see Checkpointer._progress)."""

from __future__ import annotations

import collections
import concurrent.futures as cf
import threading
from dataclasses import dataclass, field
from typing import Callable

from ..repo.paths import RepoPaths
from .config import EngineConfig
from .local import LocalTier
from .memory import MemoryTier


@dataclass
class Pending:
    """A version captured but not yet committed."""
    vid: str
    parent: str | None
    branch: str
    step: int | None
    message: str
    attrs: dict
    t0: float
    leaves: list
    descs: list                     # this rank's (leaf name, description) list
    boxes: dict | None              # rank 0: distributed leaf -> (offsets, shapes) of all ranks
    nbytes: int = 0
    plan: object = None             # the RankWriter plan (dedup decisions, encoded chunks)
    lock: str | None = None         # rank 0: the repository writer lock (keeps gc away)
    replicated: dict | None = None  # leaf name -> same bytes on every rank (manifest)
    future: cf.Future | None = field(default=None, repr=False)


class Engine:
    KEEP_LOCAL = 2   # versions kept in the local tier after promotion, for fast restore

    def __init__(self, cfg: EngineConfig, persistent: RepoPaths, rank: int,
                 write: Callable[[RepoPaths, "Pending"], dict]):
        self.cfg = cfg
        self.persistent = persistent
        self.rank = rank
        self._write = write
        self.memory = MemoryTier(cfg.memory_budget)
        self.local = LocalTier(cfg.local_dir) if cfg.local_dir else None
        self.pending: list[Pending] = []
        self._flusher = cf.ThreadPoolExecutor(1, thread_name_prefix="vlcc-flush")
        self._prefetcher = cf.ThreadPoolExecutor(1, thread_name_prefix="vlcc-prefetch")
        self._prefetching: dict[str, cf.Future] = {}
        self._local_kept: collections.deque = collections.deque()
        self._lock = threading.Lock()

    @property
    def faster_layouts(self) -> list[RepoPaths]:
        return [self.local.layout] if self.local else []

    # -- write path ------------------------------------------------------------------
    def submit(self, p: Pending) -> None:
        """Queue a captured version for flushing. Blocks while the memory tier
        is full of unflushed versions (back-pressure)."""
        p.nbytes = sum(int(l.data.nbytes) for l in p.leaves)
        self.memory.put(p.vid, {l.name: l for l in p.leaves}, p.nbytes, dirty=True)
        p.future = self._flusher.submit(self._flush, p)
        self.pending.append(p)

    def _flush(self, p: Pending) -> dict:
        if self.local is None:
            res = self._write(self.persistent, p)
            self.memory.mark_clean(p.vid)
        else:
            res = self._write(self.local.layout, p)
            # The bytes are safe in the local tier now: the memory copy may be
            # evicted/recycled while the promotion to persistent storage runs.
            self.memory.mark_clean(p.vid)
            self.local.promote(self.persistent, [
                self.persistent.rel_data_file(p.vid, self.rank),
                self.persistent.rel_index_file(p.vid, self.rank)])
            self._local_kept.append(p.vid)
            while len(self._local_kept) > self.KEEP_LOCAL:
                self.local.evict(self._local_kept.popleft(), self.rank)
        return res

    def flushed_prefix(self, block: bool) -> tuple[list[dict], str | None]:
        """Results of the leading pending versions whose flush finished, and the
        first flush error (as text) if one failed."""
        if block:
            cf.wait([p.future for p in self.pending])
        out: list[dict] = []
        for p in self.pending:
            if not p.future.done():
                break
            exc = p.future.exception()
            if exc is not None:
                return out, f"version {p.vid}: {type(exc).__name__}: {exc}"
            out.append(p.future.result())
        return out, None

    def abandon_pending(self) -> list[str]:
        """Forget every pending version (after a failed flush): their bytes are
        dropped from memory; what they wrote stays invisible (no manifest)."""
        cf.wait([p.future for p in self.pending])
        vids = [p.vid for p in self.pending]
        for v in vids:
            self.memory.drop(v)
        self.pending.clear()
        return vids

    # -- read path -------------------------------------------------------------------
    def prefetch(self, vids: list[str], load: Callable[[str], tuple[dict, int] | None]) -> None:
        """Start loading versions into memory in the background, in order, while
        they fit without evicting anything needed sooner."""
        for vid in vids:
            with self._lock:
                if vid in self._prefetching or self.memory.contains(vid):
                    continue
                self._prefetching[vid] = self._prefetcher.submit(self._prefetch_one, vid, load)

    def _prefetch_one(self, vid, load) -> bool:
        try:
            if self.memory.contains(vid):
                return True
            got = load(vid)
            if got is None:
                return False
            leaves, nbytes = got
            return self.memory.put(vid, leaves, nbytes, dirty=False, prefetched=True)
        finally:
            with self._lock:
                self._prefetching.pop(vid, None)

    def wait_prefetch(self, vid: str) -> None:
        with self._lock:
            fut = self._prefetching.get(vid)
        if fut is not None:
            try:
                fut.result()
            except Exception:
                pass  # a failed prefetch is a miss; the restore reads and reports

    def close(self) -> None:
        self._prefetcher.shutdown(wait=True, cancel_futures=True)
        self._flusher.shutdown(wait=True)
        self.memory.clear()
        if self.local is not None:
            self.local.destroy()
