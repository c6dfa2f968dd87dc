"""Where the adjoint's snapshots live.

* ``RamStore``: snapshots of the registered state in this process's memory
  (captured and restored through ``_state``; never written to disk). Buffers of
  released snapshots are recycled, so steady state does no page faults.
* ``DiskStore``: snapshots as ordinary vlcc versions on a private branch
  (``adjoint/<run-id>``) written with ``ck.checkpoint`` (sync or async, as the
  Checkpointer is configured: node-local and persistent tiers), restored with
  ``ck.restore``, prefetched after ``ck.plan``; removed at the end of the run.

Both count snapshots per key (a step may be stored twice by a schedule, e.g.
as restart data and as adjoint dependency: the bytes are the same, u_n).
"""

from __future__ import annotations

import secrets

import numpy as np

from . import _state
from ..comm import protocol
from ..engine.buffers import SizePool
from .errors import AdjointError

class RamStore:
    def __init__(self, ck, limit: int):
        self.ck, self.limit = ck, int(limit)
        self._snaps: dict[int, list] = {}          # n -> [Snapshot, refs]
        self._free = SizePool()
        self.stores = self.restores = self.peak = 0

    def __contains__(self, n: int) -> bool:
        return n in self._snaps

    def __len__(self) -> int:
        return len(self._snaps)

    def _alloc(self, nbytes: int):
        return self._free.take(nbytes)

    def store(self, n: int) -> None:
        if n in self._snaps:               # same state u_n: share it
            self._snaps[n][1] += 1
            return
        if len(self._snaps) >= self.limit:
            raise AdjointError(f"adjoint: RAM snapshot of step {n} would exceed ram={self.limit} "
                               f"(held: steps {sorted(self._snaps)}); the schedule needs more "
                               f"RAM snapshots than it was given")
        self._snaps[n] = [_state.capture(self.ck, self._alloc), 1]
        self.stores += 1
        self.peak = max(self.peak, len(self._snaps))

    def snapshot(self, n: int):
        """A snapshot for other uses (work copies): not counted against ``limit``."""
        return _state.capture(self.ck, self._alloc)

    def recycle(self, snap) -> None:
        for b in snap.buffers():
            self._free.give(b)

    def restore(self, n: int) -> None:
        if n not in self._snaps:
            raise AdjointError(f"adjoint: no RAM snapshot of step {n} (held: {sorted(self._snaps)})")
        _state.restore(self.ck, self._snaps[n][0])
        self.restores += 1

    def release(self, n: int) -> None:
        e = self._snaps.get(n)
        if e is None:
            raise AdjointError(f"adjoint: releasing RAM snapshot of step {n}, which is not held")
        e[1] -= 1
        if e[1] == 0:
            del self._snaps[n]
            self.recycle(e[0])

    def clear(self) -> None:
        self._snaps.clear()
        self._free.clear()

class DiskStore:
    """Disk snapshots: versions on the private branch ``adjoint/<run-id>``."""

    def __init__(self, ck, limit: int | None, keep: bool = False, prefetch: bool = True):
        self.ck, self.limit, self.keep, self.prefetch = ck, limit, keep, prefetch
        run = protocol.from_root(ck.comm, lambda: secrets.token_hex(4))
        self.branch = f"adjoint/{run}"
        self._vids: dict[int, list] = {}           # n -> [version id, refs]
        self.written: list[str] = []               # every version this run wrote
        self.stores = self.restores = self.peak = 0
        self.hits = self.misses = 0

    def __contains__(self, n: int) -> bool:
        return n in self._vids

    def __len__(self) -> int:
        return len(self._vids)

    def vid(self, n: int) -> str | None:
        e = self._vids.get(n)
        return e[0] if e else None

    def _on_branch(self, fn):
        """Run ``fn`` with the Checkpointer writing on the private branch, then put
        the application's branch and parent back (its lineage is untouched)."""
        ck = self.ck
        branch, parent = ck.branch_name, ck.parent
        ck.switch(self.branch, create=True)
        try:
            return fn()
        finally:
            ck.switch(branch, create=True)   # create: the app's branch may have no version yet
            ck.parent = parent

    def store(self, n: int, run_id: str = "") -> None:
        if n in self._vids:
            self._vids[n][1] += 1
            return
        if self.limit is not None and len(self._vids) >= self.limit:
            raise AdjointError(f"adjoint: disk snapshot of step {n} would exceed disk={self.limit} "
                               f"(held: steps {sorted(self._vids)})")
        v = self._on_branch(lambda: self.ck.checkpoint(
            step=n, message=f"adjoint snapshot u_{n}", attrs={"adjoint": self.branch}))
        self._vids[n] = [v.id, 1]
        self.written.append(v.id)
        self.stores += 1
        self.peak = max(self.peak, len(self._vids))

    def restore(self, n: int) -> None:
        if n not in self._vids:
            raise AdjointError(f"adjoint: no disk snapshot of step {n} (held: {sorted(self._vids)})")
        ck = self.ck
        before = ck.stats.get("hits", 0)
        parent = ck.parent
        ck.restore(self._vids[n][0])
        ck.parent = parent            # restoring a snapshot is not the app's lineage
        if ck.stats.get("hits", 0) > before:
            self.hits += 1
        else:
            self.misses += 1
        self.restores += 1

    def release(self, n: int) -> None:
        e = self._vids.get(n)
        if e is None:
            raise AdjointError(f"adjoint: releasing disk snapshot of step {n}, which is not held")
        e[1] -= 1
        if e[1] == 0:
            del self._vids[n]

    def plan(self, order: list[str]) -> None:
        """Tell the engine the exact order of the coming disk restores."""
        if self.prefetch and order:
            self.ck.plan(order)

    def cleanup(self) -> None:
        """Collective: remove every version this run wrote (unless ``keep``)."""
        self._vids.clear()
        if self.keep or not self.written:
            return
        ck = self.ck
        ck.wait()
        try:
            protocol.from_root(ck.comm, lambda: _state.remove_versions(
                ck.path, self.branch, list(self.written)))
        except Exception as exc:              # raised on every rank by from_root
            raise AdjointError(f"adjoint: removing the snapshots of {self.branch} from {ck.path} "
                               f"failed: {type(exc).__name__}: {exc}") from exc
        self.written.clear()
