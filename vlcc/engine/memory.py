"""The memory tier: this rank's leaves of recent versions, within a byte budget.

Entries are *dirty* (captured, not yet durable on persistent storage: never
evicted) or *clean* (durable, or prefetched from storage: evictable). Space is
made by evicting clean entries — the one used farthest in the future when a
plan is known (Belady), else the least recently used — and, when only dirty
entries remain, by waiting for the flusher (back-pressure)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from .buffers import SizePool, mapped, recyclable


@dataclass
class Entry:
    vid: str
    leaves: dict            # leaf name -> Leaf (with .data)
    nbytes: int
    dirty: bool


@dataclass
class Stats:
    hits: int = 0
    misses: int = 0
    prefetched: int = 0
    prefetch_hits: int = 0
    evictions: int = 0
    waits: int = 0
    wait_seconds: float = 0.0
    peak_bytes: int = 0
    prefaulted: int = 0     # bytes of capture buffers faulted in ahead of time
    spilled: int = 0        # versions captured into the node-local tier (memory full)
    spilled_bytes: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class MemoryTier:
    def __init__(self, budget: int):
        self.budget = budget
        self.used = 0
        self._entries: "OrderedDict[str, Entry]" = OrderedDict()
        self._cv = threading.Condition()
        self.stats = Stats()
        self._plan: list[str] = []
        self._pos = 0
        self._prefetched: set[str] = set()
        # Buffers of evicted captures, by size, for the next capture: reusing
        # them avoids page faults (and THP compaction) on every checkpoint.
        self._free = SizePool()           # bounded here: used + pool_bytes <= budget

    # -- schedule -----------------------------------------------------------------
    def set_plan(self, vids: list[str]) -> None:
        with self._cv:
            self._plan, self._pos = list(vids), 0

    def advance(self, vid: str) -> None:
        """Record that ``vid`` was just used: the plan position moves past it."""
        with self._cv:
            for i in range(self._pos, len(self._plan)):
                if self._plan[i] == vid:
                    self._pos = i + 1
                    break

    def upcoming(self, n: int) -> list[str]:
        with self._cv:
            return self._plan[self._pos:self._pos + n]

    def _next_use(self, vid: str) -> float:
        for i in range(self._pos, len(self._plan)):
            if self._plan[i] == vid:
                return i
        return float("inf")

    # -- entries ------------------------------------------------------------------
    def get(self, vid: str) -> Entry | None:
        with self._cv:
            e = self._entries.get(vid)
            if e is not None:
                self._entries.move_to_end(vid)
            return e

    def contains(self, vid: str) -> bool:
        with self._cv:
            return vid in self._entries

    def _victim(self, protect: str | None) -> str | None:
        clean = [v for v, e in self._entries.items() if not e.dirty and v != protect]
        if not clean:
            return None
        if self._plan:
            return max(clean, key=lambda v: (self._next_use(v), -list(self._entries).index(v)))
        return clean[0]  # OrderedDict order = least recently used first

    # -- buffer pool ------------------------------------------------------------------
    @property
    def pool_bytes(self) -> int:
        """Bytes of free buffers held for reuse (counted against the budget)."""
        return self._free.nbytes

    def take(self, nbytes: int) -> np.ndarray | None:
        """A recycled flat uint8 buffer of exactly ``nbytes`` bytes, or None.

        When the pool has none and the new capture would not fit beside the
        entries held, the victim clean entry is evicted *now* (its buffers go
        to the pool) rather than after the capture: a capture into a fresh
        buffer pays a page fault per 4 KiB page (~100 ms per 64 MiB here,
        12x the copy itself)."""
        with self._cv:
            while True:
                buf = self._free.take(nbytes)
                if buf is not None:
                    return buf
                if self.used + nbytes <= self.budget or not self._evict_one():
                    return None

    def recycle(self, nbytes: int) -> np.ndarray | None:
        """A buffer of ``nbytes`` taken from the least recently used clean
        *captured* entry that has one (that entry is evicted; prefetched
        entries are left to the plan): reusing a mapped buffer costs nothing,
        mapping a new one ~70 ms of kernel time per 64 MiB, which an
        application without a free core pays in full."""
        with self._cv:
            for vid, e in self._entries.items():
                if e.dirty or vid in self._prefetched:
                    continue
                if any(getattr(l, "pooled", False) and recyclable(getattr(l, "data", None))
                       and l.data.nbytes == nbytes for l in e.leaves.values()):
                    self._entries.pop(vid)
                    self.used -= e.nbytes
                    self._recycle(e)
                    self.stats.evictions += 1
                    self._cv.notify_all()
                    return self._free.take(nbytes)
            return None

    def has_clean(self) -> bool:
        with self._cv:
            return any(not e.dirty for e in self._entries.values())

    def fits(self, nbytes: int) -> bool:
        """Would ``nbytes`` more fit without waiting for the flusher (evicting
        clean entries if needed)?"""
        with self._cv:
            clean = sum(e.nbytes for e in self._entries.values() if not e.dirty)
            return self.used - clean + nbytes <= self.budget

    def prefault(self, nbytes: int) -> bool:
        """Allocate and touch a buffer for a future capture of ``nbytes`` bytes
        (the page faults are paid here, not in the first checkpoint); kept in
        the pool while it fits in the budget."""
        with self._cv:
            if nbytes <= 0 or self.used + self.pool_bytes + nbytes > self.budget:
                return False
        buf = mapped(nbytes, huge=True)
        with self._cv:
            if self.used + self.pool_bytes + nbytes > self.budget:
                return False
            self._free.give(buf)
            self.stats.prefaulted += nbytes
            return True

    def give(self, buf: np.ndarray) -> None:
        """Return a flat uint8 buffer (restore staging, an abandoned copy) to
        the pool, if it fits the budget."""
        with self._cv:
            if (recyclable(buf) and buf.nbytes
                    and self.used + self.pool_bytes + buf.nbytes <= self.budget):
                self._free.give(buf)

    def _recycle(self, e: Entry) -> None:
        for leaf in e.leaves.values():
            d = getattr(leaf, "data", None)
            if (getattr(leaf, "pooled", False) and recyclable(d)
                    and self.used + self.pool_bytes + d.nbytes <= self.budget):
                self._free.give(d)

    def _shrink_pool(self, need: int) -> None:
        """Release pooled buffers until ``need`` more bytes fit in the budget."""
        while self.used + self.pool_bytes + need > self.budget and self._free.drop_largest():
            pass

    def _evict_one(self, protect=None) -> bool:
        v = self._victim(protect)
        if v is None:
            return False
        e = self._entries.pop(v)
        self.used -= e.nbytes
        self._recycle(e)
        self.stats.evictions += 1
        self._prefetched.discard(v)
        self._cv.notify_all()
        return True

    def put(self, vid: str, leaves: dict, nbytes: int, dirty: bool, *,
            prefetched: bool = False) -> bool:
        """Insert an entry, making room first. A dirty insert blocks until room
        exists (back-pressure); a clean one gives up (returns False) when it would
        have to wait or would evict something needed sooner than itself."""
        with self._cv:
            if vid in self._entries:
                return True
            self._shrink_pool(nbytes)
            t0 = None
            while self.used + nbytes > self.budget and self._entries:
                if not dirty and self._plan:
                    v = self._victim(None)
                    if v is None or self._next_use(v) <= self._next_use(vid):
                        return False
                if self._evict_one():
                    continue
                if not dirty:
                    return False
                if t0 is None:
                    t0 = time.monotonic()
                    self.stats.waits += 1
                self._cv.wait(timeout=0.5)
            if t0 is not None:
                self.stats.wait_seconds += time.monotonic() - t0
            self._entries[vid] = Entry(vid, leaves, nbytes, dirty)
            self.used += nbytes
            self.stats.peak_bytes = max(self.stats.peak_bytes, self.used)
            if prefetched:
                self._prefetched.add(vid)
                self.stats.prefetched += 1
            return True

    def mark_clean(self, vid: str) -> None:
        with self._cv:
            e = self._entries.get(vid)
            if e is not None:
                e.dirty = False
            # A budget overrun by a single large version is allowed; shrink now.
            while self.used > self.budget and self._evict_one():
                pass
            self._cv.notify_all()

    def drop(self, vid: str) -> None:
        with self._cv:
            e = self._entries.pop(vid, None)
            if e is not None:
                self.used -= e.nbytes
                self._cv.notify_all()

    def record_access(self, vid: str, hit: bool) -> None:
        with self._cv:
            if hit:
                self.stats.hits += 1
                if vid in self._prefetched:
                    self.stats.prefetch_hits += 1
                    self._prefetched.discard(vid)
            else:
                self.stats.misses += 1

    def clear(self) -> None:
        with self._cv:
            self._entries.clear()
            self._free.clear()
            self.used = 0
            self._cv.notify_all()
