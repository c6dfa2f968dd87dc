"""Capture buffers: anonymous mappings whose pages are mapped before the
copy, so a capture costs one memory copy and no page faults.

Measured here (64 MiB, 2-core VM, THP "madvise"): copy into mapped memory
8–20 ms; into a fresh buffer 100–170 ms (a fault per 4 KiB page); into a
fresh MADV_HUGEPAGE buffer 15–440 ms (direct compaction stalls); mapping
with MAP_POPULATE 70 ms, huge pages touched once per page 14–170 ms. So:
buffers faulted in the background (``huge=True``: their copies are up to
~10 % faster and the compaction stall is off the critical path), and
MAP_POPULATE without huge pages when the blocking path must allocate."""

from __future__ import annotations

import mmap
import os
import threading

import numpy as np

_PAGE = mmap.PAGESIZE


class _Anon(mmap.mmap):
    """An anonymous mapping owned by vlcc's memory tier (recyclable)."""


def mapped(nbytes: int, *, huge: bool = False) -> np.ndarray:
    """A flat uint8 array of ``nbytes`` whose pages are all mapped."""
    if nbytes <= 0:
        return np.empty(0, np.uint8)
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
    populate = getattr(mmap, "MAP_POPULATE", 0)
    if huge and hasattr(mmap, "MADV_HUGEPAGE"):
        mm = _Anon(-1, nbytes, flags=flags)
        try:
            mm.madvise(mmap.MADV_HUGEPAGE)
        except OSError:
            pass
        arr = np.frombuffer(mm, np.uint8)
        arr[::_PAGE] = 0              # fault every page now
        return arr
    if threading.current_thread() is not threading.main_thread():
        # mmap() keeps the GIL: MAP_POPULATE of 64 MiB in a background thread
        # stalled the application's thread ~50 ms (512 MiB: 340 ms). Faulting
        # the pages by a numpy write lets it run.
        populate = 0
    mm = _Anon(-1, nbytes, flags=flags | populate)
    arr = np.frombuffer(mm, np.uint8)
    if not populate:
        arr[::_PAGE] = 0
    return arr


def recyclable(arr) -> bool:
    """Is ``arr`` a whole buffer made by :func:`mapped` (or a plain owned numpy
    buffer), not a view into something else or a node-local spill mapping?"""
    if arr is None or not arr.flags.c_contiguous or arr.nbytes == 0:
        return False
    base = arr.base
    return base is None or (isinstance(base, memoryview) and type(base.obj) is _Anon
                            and base.nbytes == arr.nbytes)


def available_memory() -> int:
    """Bytes of memory available to new allocations (MemAvailable on Linux)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil
        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - psutil is optional
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


class SizePool:
    """Free flat buffers kept for reuse, taken back by exact size: the memory
    tier's pool (engine/memory.py, which bounds it by its byte budget; restore
    staging shares it), the adjoint's RAM snapshots (adjoint/storage.py) and
    the flush's gather buffers (commit/rankwrite.py). ``keep``: at most that
    many buffers (the oldest is dropped), None: no bound. ``take``, ``give``
    and dropping one are O(1) (a dict per size, insertion-ordered: the newest
    buffer of a size is taken first, its pages are the likeliest still
    mapped). Thread-safe; ``nbytes`` is the bytes held."""

    def __init__(self, keep: int | None = None):
        self.keep = keep
        self._by_size: dict[int, dict[int, np.ndarray]] = {}
        self._order: dict[int, int] = {}          # id(buffer) -> size, oldest first
        self.nbytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._order)

    def take(self, nbytes: int) -> np.ndarray | None:
        with self._lock:
            bufs = self._by_size.get(nbytes)
            if not bufs:
                return None
            key, buf = bufs.popitem()
            self._forget(key, nbytes, bufs)
            return buf

    def give(self, buf: np.ndarray) -> None:
        with self._lock:
            if id(buf) in self._order:     # given twice: held once
                return
            if self.keep is not None and len(self._order) >= self.keep:
                self._drop(next(iter(self._order)))
            self._add(buf)

    def reserve(self, nbytes: int, make) -> None:
        """Add ``make()`` (a new buffer of ``nbytes``) unless one of that size is
        free or the pool is full; ``make`` runs outside the lock."""
        with self._lock:
            if self.full() or self._by_size.get(nbytes):
                return
        b = make()
        with self._lock:
            if not self.full():
                self._add(b)

    def drop_largest(self) -> int:
        """Release one buffer of the largest size held; its size (0: empty)."""
        with self._lock:
            if not self._by_size:
                return 0
            size = max(self._by_size)
            self._drop(next(iter(self._by_size[size])))
            return size

    def full(self) -> bool:
        return self.keep is not None and len(self._order) >= self.keep

    def sizes(self) -> list[int]:
        with self._lock:
            return list(self._order.values())

    def clear(self) -> None:
        with self._lock:
            self._by_size.clear()
            self._order.clear()
            self.nbytes = 0

    def _add(self, buf: np.ndarray) -> None:
        key = id(buf)
        if key in self._order:
            return
        self._by_size.setdefault(buf.nbytes, {})[key] = buf
        self._order[key] = buf.nbytes
        self.nbytes += buf.nbytes

    def _drop(self, key: int) -> None:
        size = self._order[key]
        bufs = self._by_size[size]
        del bufs[key]
        self._forget(key, size, bufs)

    def _forget(self, key: int, size: int, bufs: dict) -> None:
        del self._order[key]
        if not bufs:
            del self._by_size[size]
        self.nbytes -= size


def spare_cpu() -> bool:
    """Has this process a spare CPU (1-min load average below the CPUs it may
    use, minus one)? Work handed to another thread only hides there."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:          # not Linux
        cpus = os.cpu_count() or 1
    try:
        return cpus >= 2 and os.getloadavg()[0] < cpus - 1
    except OSError:
        return False


__all__ = ["SizePool", "available_memory", "mapped", "recyclable", "spare_cpu"]

