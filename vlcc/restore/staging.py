"""Staging memory of the all-or-nothing restore (restore/collective.py).

Arrays read from disk are not staged (``Stager.deferred``): phase 1 verifies
every chunk an array needs where it lies (in the page cache, through the
file's mapping: no copy), and phase 2 copies the verified bytes into the
application's array straight from the pages phase 1 verified (a file
changed between the phases — written, truncated, replaced — is caught by
its modification time, size or inode, but after the arrays copied before
the check were written: the price of skipping a staging copy and a
second hash of every byte; damage
present when the restore starts is always found before any array is
touched). Chunks that cannot be checked in place (files without recorded
offsets, encoded chunks) are read into private memory in phase 1.

Otherwise phase 1 reads and checks every byte a provider needs into
staging arrays shaped like the provider's target (so phase 2 is one
``np.copyto`` per array); application memory is untouched until every rank
has succeeded. Staging buffers come from the memory tier's buffer pool and go
back to it (a fresh buffer costs page faults and hugepage compaction, often
more than the read), so repeated restores reuse the same pages within
``memory_budget``. A restore from the memory tier stages nothing: the
captured leaves already are a private, checked copy (``src.view``)."""

from __future__ import annotations

import warnings

import numpy as np

from ..engine.buffers import available_memory
from ..state.array import ArrayProvider
from ..units import human_bytes
from .profile import stage


class Stager:
    """The phase-1 ``read(name, target, private=False)`` handed to
    ``Provider.stage`` (see there). ``atomic``: stage arrays (else read straight
    into the target). ``pool``: an object with ``take(nbytes)``/``give(buf)``
    (the memory tier) or None."""

    def __init__(self, src, atomic: bool, pool=None):
        self.src, self.atomic, self.pool = src, atomic, pool
        self.direct = src.read          # providers that only define restore_leaves (phase 2)
        self._taken: list[np.ndarray] = []

    def __call__(self, name: str, target, private: bool = False):
        if target is None:
            return self.src.read(name, None)
        if private or not self.atomic:
            self.src.read(name, target)
            return target
        view = getattr(self.src, "view", None)
        if view is not None:
            return view(name, target)
        buf = self._alloc(target.nbytes).view(target.dtype).reshape(target.shape)
        self.src.read(name, buf)
        return buf

    def deferred(self, name: str, target: np.ndarray):
        """Phase 1 of an array: like ``self(name, target)``, or (atomic restore
        from disk) a callable doing the copies of phase 2, everything it
        copies verified now and again while copied (see the module doc)."""
        reader = getattr(self.src, "reader", None)
        if not self.atomic or reader is None or target is None:
            return self(name, target)
        ops: list = []
        reader.defer = ops
        try:
            self.src.read(name, target)
        finally:
            reader.defer = None
        return Deferred(ops)

    def _alloc(self, nbytes: int) -> np.ndarray:
        buf = self.pool.take(nbytes) if (self.pool is not None and nbytes) else None
        if buf is None:
            buf = np.empty(nbytes, np.uint8)
        self._taken.append(buf)
        return buf

    def release(self) -> None:
        """Give the staging buffers back to the pool (after phase 2, or on failure)."""
        if self.pool is not None:
            for buf in self._taken:
                self.pool.give(buf)
        self._taken.clear()


class Deferred:
    """The queued, already verified copies of one array (phase 2: call it)."""

    def __init__(self, ops: list):
        self.ops = ops

    def __call__(self) -> None:
        with stage("staging"):
            for op in self.ops:
                op()


def staging_bytes(providers) -> int:
    """Bytes an atomic restore from disk stages on this rank: one copy of every
    registered array's owned block (object providers' arrays are fresh anyway)."""
    return sum(int(np.prod(p.owned_shape)) * p.array.dtype.itemsize
               for p in providers if isinstance(p, ArrayProvider))


def stage_fits(providers, pooled: int = 0) -> bool:
    """Would staging fit in half of the available memory (pooled buffers are reused)?"""
    return staging_bytes(providers) - pooled <= available_memory() // 2


def warn_direct(where: str, nbytes: int) -> None:
    warnings.warn(f"restoring {where} straight into the application's arrays (atomic=False): "
                  f"staging {human_bytes(nbytes)} would exceed half of the available memory, "
                  f"so a failure while reading may leave providers partly restored "
                  f"(restore(..., atomic=True) forces staging)", RuntimeWarning, stacklevel=4)
