"""``vlcc.adjoint.Adjoint``: run an adjoint computation with a checkpoint schedule.

    ad = Adjoint(ck, forward, reverse, n_steps=100, schedule="revolve", ram=10)
    ad.run_forward()          # state is u_N: set the final adjoint condition
    ad.run_reverse()          # reverse(n) for n = N-1 ... 0, state restored to u_n
    ad.stats                  # forward_steps, reverse_steps, stores/restores, prefetch, seconds

Collective over ``ck.comm``: every rank runs the same schedule on its own
block; disk snapshots are vlcc versions (collective writes and restores); an
exception on one rank (in forward, reverse or the executor) is raised on every
rank after the action it happened in, and the run's snapshots are removed.
"""

from __future__ import annotations

import time
from typing import Callable

from . import schedules
from ..comm import protocol
from .errors import AdjointArgumentError, AdjointError
from .executor import Executor
from .online import OnlineRevolve
from .storage import DiskStore, RamStore


def _new_stats() -> dict:
    return {"forward_steps": 0, "reverse_steps": 0, "schedule_forward_steps": 0,
            "skipped_steps": 0, "work_copies": 0, "n_steps": None,
            "stores": {"ram": 0, "disk": 0}, "restores": {"ram": 0, "disk": 0},
            "ram_peak": 0, "disk_peak": 0,
            "prefetch_hits": 0, "prefetch_misses": 0,
            "seconds": {"forward": 0.0, "reverse": 0.0, "user_forward": 0.0,
                        "user_reverse": 0.0, "restore": 0.0}}


class Adjoint:
    """Executes a revolve-style checkpoint schedule on the Checkpointer ``ck``.

    forward(n):  advance the registered state from u_n to u_{n+1} in place. With
                 ``n_steps=None`` (online) return ``False`` instead — without
                 changing the state — when there is no step n: then N = n.
    reverse(n):  adjoint step n; called once for n = N-1, ..., 0, in that order,
                 with the registered state equal to u_n. Must not change it.
    n_steps:     number of steps N, or None (online: forward decides).
    schedule:    "revolve" (RAM), "multistage" (RAM + disk), "hrevolve", "twolevel",
                 "online", or a checkpoint_schedules.CheckpointSchedule.
    ram, disk:   snapshots in memory (u_0 included) and on disk (vlcc versions).
    options:     keep=False (keep the disk snapshots as versions on branch
                 ``adjoint/<run>``), prefetch=True (declare the exact disk restore
                 order with ``ck.plan``), or options of the schedule class
                 (e.g. period= for "twolevel").
    """

    def __init__(self, ck, forward: Callable[[int], object] | None,
                 reverse: Callable[[int], object] | None, n_steps: int | None,
                 schedule="revolve", ram: int | None = None, disk: int = 0, **options):
        if not callable(forward) or not callable(reverse):
            raise AdjointArgumentError("adjoint: forward and reverse must be callables "
                                       "forward(n) and reverse(n)")
        self._setup(ck, forward, reverse, n_steps, schedule, ram, disk, options)

    @classmethod
    def stepped(cls, ck, n_steps: int | None, schedule="revolve", ram: int | None = None,
                disk: int = 0, **options) -> "Adjoint":
        """An Adjoint whose caller runs the steps itself (the C API's
        ``vlcc_adjoint_next``): no forward/reverse callables; the caller asks
        :meth:`next_request` for each action and answers with :meth:`reply`."""
        self = cls.__new__(cls)
        self._setup(ck, None, None, n_steps, schedule, ram, disk, options)
        return self

    def _setup(self, ck, forward, reverse, n_steps, schedule, ram, disk, options) -> None:
        if ram is None:
            raise AdjointArgumentError("adjoint: give ram=<snapshots in memory> (>= 1)")
        keep = bool(options.pop("keep", False))
        prefetch = bool(options.pop("prefetch", True))
        self.ck, self.forward, self.reverse = ck, forward, reverse
        self.n_steps, self.ram, self.disk = n_steps, ram, disk
        self.schedule = schedules.make(schedule, n_steps, ram, disk, options)
        if n_steps is None and not isinstance(self.schedule, OnlineRevolve) \
                and getattr(self.schedule, "max_n", None) is not None:
            raise AdjointArgumentError("adjoint: n_steps=None needs an online schedule")
        self.stats = _new_stats()
        self._ram = RamStore(ck, ram)
        # checkpoint_schedules' HRevolve may hold more disk snapshots than its `disk`
        # argument (measured: HRevolve(50, 2, 3) holds 4): its count is not a bound.
        limit = None if type(self.schedule).__name__ == "HRevolve" else disk
        self._disk = DiskStore(ck, limit, keep=keep, prefetch=prefetch) if disk else None
        self._exec = Executor(self.schedule, n_steps, self._ram, self._disk, self.stats)
        self._gen = self._exec.run()
        self._reply = None
        self.phase = "new"            # -> "reverse" after run_forward -> "done" / "failed"

    # -- the Python driver ---------------------------------------------------------------
    def run_forward(self) -> None:
        """The forward sweep (collective). On return the registered state is u_N."""
        if self.phase != "new":
            raise AdjointError(f"adjoint: run_forward() called in phase {self.phase!r}")
        t = time.perf_counter()
        self._drive("end_forward")
        self.stats["seconds"]["forward"] += time.perf_counter() - t
        self.phase = "reverse"

    def run_reverse(self) -> None:
        """The reverse sweep (collective): reverse(n) for n = N-1, ..., 0."""
        if self.phase != "reverse":
            raise AdjointError(f"adjoint: run_reverse() called in phase {self.phase!r} "
                               f"(call run_forward() first, once)")
        t = time.perf_counter()
        self._drive(None)
        self.stats["seconds"]["reverse"] += time.perf_counter() - t
        self.phase = "done"

    def _drive(self, until) -> None:
        while True:
            req = self.next_request()
            if req is None or req[0] == until:
                return
            err, self._reply = None, None
            kind = req[0]
            t = time.perf_counter()
            try:
                if kind == "forward":
                    self._reply = self._call_forward(req[1], req[2])
                elif kind == "reverse":
                    self.reverse(req[1])
                    self.stats["reverse_steps"] += 1
            except BaseException as exc:       # noqa: BLE001 - agreed on below
                err = exc
            self.stats["seconds"]["user_" + kind] += time.perf_counter() - t
            self._agree(err, f"{kind}({req[1]})")

    def _call_forward(self, n0: int, n1: int) -> int:
        taken = 0
        for k in range(n0, n1):
            if self.forward(k) is False:
                if self.n_steps is not None:
                    raise AdjointError(f"adjoint: forward({k}) returned False but n_steps="
                                       f"{self.n_steps} is fixed")
                break
            taken += 1
            self.stats["forward_steps"] += 1
        return taken

    # -- shared with the C API ----------------------------------------------------------
    def next_request(self):
        """Advance the executor to the next application request (collective):
        ("forward", n0, n1), ("end_forward",), ("reverse", n) or None when done."""
        err = req = None
        try:
            req = self._gen.send(self._reply)
        except StopIteration:
            req = None
        except BaseException as exc:          # noqa: BLE001 - agreed on below
            err = exc
        self._reply = None
        self._agree(err, "the adjoint executor")
        if req is None:
            self._finish()
        return req

    def reply(self, value) -> None:
        self._reply = value

    def _agree(self, err, what: str) -> None:
        """Every rank learns whether any rank failed; all raise if one did."""
        # The error was caught where it happened (any BaseException, so a
        # KeyboardInterrupt is agreed on too): the allgather carries its text.
        msg = None if err is None else f"{type(err).__name__}: {err}"
        bad = [(r, m) for r, m in enumerate(protocol.allgather(self.ck.comm, lambda: msg))
               if m is not None]
        if not bad:
            return
        self._abort()
        if err is not None:
            raise err
        r, m = bad[0]
        from ..errors import CollectiveError
        raise CollectiveError(f"adjoint: {what} failed on rank {r}: {m}")

    def _collect(self) -> None:
        s = self.stats
        s["stores"] = {"ram": self._ram.stores, "disk": self._disk.stores if self._disk is not None else 0}
        s["restores"] = {"ram": self._ram.restores,
                         "disk": self._disk.restores if self._disk is not None else 0}
        s["ram_peak"] = self._ram.peak
        s["disk_peak"] = self._disk.peak if self._disk is not None else 0
        if self._disk is not None:
            s["prefetch_hits"], s["prefetch_misses"] = self._disk.hits, self._disk.misses
            s["branch"] = self._disk.branch
        if s["n_steps"] is None:
            s["n_steps"] = self._exec.N

    def _finish(self) -> None:
        """End of the schedule: release everything (collective)."""
        self._collect()
        self._ram.clear()
        if self._disk is not None:
            self._disk.cleanup()
        self.phase = "done"

    def _abort(self) -> None:
        """After an agreed failure (every rank is here): drop the snapshots."""
        self.phase = "failed"
        self._gen.close()
        self._collect()
        self._ram.clear()
        if self._disk is not None:
            try:
                self._disk.cleanup()
            except Exception:       # noqa: BLE001 - the original error is what matters
                pass
