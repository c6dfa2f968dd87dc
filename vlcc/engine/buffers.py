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


__all__ = ["available_memory", "mapped", "recyclable", "spare_cpu"]

