"""Runs a checkpoint schedule on vlcc's tiers.

The executor is a generator: it walks the schedule's actions, stores and
restores snapshots itself (RamStore / DiskStore), and *yields* only what the
application must do:

    ("forward", n0, n1)   advance the registered state u_n0 -> u_n1 (reply: steps done)
    ("end_forward",)      the forward sweep is over, the state is u_N
    ("reverse", n)        adjoint step n; the registered state is u_n

so the same code drives Python callbacks (vlcc.adjoint.Adjoint) and C/Fortran
programs that ask for the next action (vlcc_adjoint_next).

Adjoint dependencies. checkpoint_schedules follows pyrevolve's convention: the
adjoint of step n needs data written while *running* step n (a Forward with
``write_adj_deps``). Here reverse(n) needs u_n itself, so such a step is
skipped when its Reverse follows directly (the state already is u_n). The
first sweep still runs the last step (the application wants u_N) and keeps a
work copy of u_{N-1} for the first reverse step. Hence a revolve run calls
forward ``optimal_steps_binomial(n, s) - n + 1`` times: the binomial optimum
counted in checkpoint_schedules' (and pyrevolve's) convention minus the n-1
redundant re-runs; ``stats['schedule_forward_steps']`` reports the former.
"""

from __future__ import annotations

import time

from .errors import AdjointError
from .online import OnlineRevolve


class Executor:
    def __init__(self, schedule, n_steps, ram_store, disk_store, stats: dict):
        self.schedule, self.N = schedule, n_steps
        self.ram, self.disk = ram_store, disk_store
        self.stats = stats
        self.pos = 0                     # the registered state is u_pos
        self.adj: dict[int, object] = {}  # step -> where its adjoint dependency u_k lives
        self.work: dict[int, object] = {}  # step -> RAM work copy (not a schedule snapshot)
        self.next_reverse = None
        self.online = isinstance(schedule, OnlineRevolve)

    # -- storage by checkpoint_schedules' StorageType ------------------------------
    def _store(self, storage, n):
        name = storage.name
        if name == "RAM":
            self.ram.store(n)
        elif name == "DISK":
            if self.disk is None:
                raise AdjointError(f"adjoint: the schedule stores step {n} on disk but disk=0")
            self.disk.store(n)
        else:
            raise AdjointError(f"adjoint: cannot store a snapshot in {storage}")

    def _restore(self, storage, n):
        t = time.perf_counter()
        (self.ram if storage.name == "RAM" else self._disk()).restore(n)
        self.stats["seconds"]["restore"] += time.perf_counter() - t
        self.pos = n

    def _release(self, storage, n):
        (self.ram if storage.name == "RAM" else self._disk()).release(n)

    def _disk(self):
        if self.disk is None:
            raise AdjointError("adjoint: the schedule reads a disk snapshot but disk=0")
        return self.disk

    def _work_copy(self, k):
        self.work[k] = self.ram.snapshot(k)
        self.stats["work_copies"] += 1

    def _use_adj(self, k, clear):
        """Make the registered state u_k from wherever its adjoint dependency is."""
        where = self.adj.get(k)
        if where is None:
            if self.pos == k:
                return               # skipped Forward: the live state is u_k
            raise AdjointError(f"adjoint: reverse step {k} but the state is u_{self.pos} and no "
                               f"snapshot of u_{k} exists (schedule inconsistent)")
        if clear:
            del self.adj[k]
        if where == "LIVE":
            if self.pos != k:
                raise AdjointError(f"adjoint: reverse step {k} but the state is u_{self.pos} "
                                   f"(schedule inconsistent)")
            return
        if where == "WORK":
            snap = self.work.pop(k) if clear else self.work[k]
            if self.pos != k:
                from . import _state
                t = time.perf_counter()
                _state.restore(self.ram.ck, snap)
                self.stats["seconds"]["restore"] += time.perf_counter() - t
                self.pos = k
            if clear:
                self.ram.recycle(snap)
        else:
            if self.pos != k:
                self._restore(where, k)
            if clear:
                self._release(where, k)

    # -- prefetch --------------------------------------------------------------------
    def _plan(self, actions, i):
        """The exact order of the coming disk restores (versions that exist now)."""
        if self.disk is None or not self.disk.prefetch:
            return
        order, rewritten = [], set()
        adj = {k: w for k, w in self.adj.items()}
        for act in actions[i:]:
            kind = type(act).__name__
            reads = []
            if kind in ("Copy", "Move") and act.from_storage.name == "DISK":
                reads = [act.n]
            elif kind == "Reverse":
                reads = [k for k in range(act.n1 - 1, act.n0 - 1, -1)
                         if getattr(adj.get(k), "name", adj.get(k)) == "DISK"]
            for n in reads:
                if n not in rewritten and n in self.disk:
                    order.append(self.disk.vid(n))
            if kind == "Forward" and act.storage.name == "DISK":
                rewritten.add(act.n0)
                if act.write_adj_deps:
                    rewritten.update(range(act.n0, act.n1))
        self.disk.plan([v for v in order if v])

    # -- the walk ----------------------------------------------------------------------
    def run(self):
        """Generator of application requests (see the module docstring)."""
        if self.online:
            yield from self._online_forward()
            actions = self.schedule.reverse_actions()
            yield from self._reverse(actions)
            return
        sched = iter(self.schedule)
        for act in sched:
            kind = type(act).__name__
            if kind == "EndForward":
                break
            if kind != "Forward":
                raise AdjointError(f"adjoint: unexpected {act} before the end of the forward sweep")
            yield from self._forward(act, None)
            if self.N is not None and self.pos >= self.N:
                if self.schedule.max_n is None:
                    self.schedule.finalize(self.N)
        else:
            raise AdjointError("adjoint: the schedule ended without EndForward")
        yield ("end_forward",)
        actions = []
        for act in sched:
            if type(act).__name__ == "EndReverse":
                break
            actions.append(act)
        yield from self._reverse(actions)

    def _online_forward(self):
        pol, n = self.schedule, 0
        while True:
            store, drops = pol.on_reach(n)
            for c in drops:
                self.ram.release(c)
            if store:
                self.ram.store(n)
            taken = yield ("forward", n, n + 1)
            if not taken:
                if n == 0:
                    raise AdjointError("adjoint: forward(0) returned False: an online run needs "
                                       "at least one step")
                if store:
                    pol.held.remove(n)
                    self.ram.release(n)
                break
            n += 1
            self.pos = n
            if self.N is not None and n >= self.N:
                break
        self.N = n
        pol.finalize(n)
        self.stats["n_steps"] = n
        # The first reverse step needs u_{N-1}: recomputed by the per-interval revolve.
        yield ("end_forward",)

    def _forward(self, act, nxt):
        n0, n1 = int(act.n0), int(act.n1)
        if self.pos != n0:
            raise AdjointError(f"adjoint: schedule asks to advance from step {n0} but the state "
                               f"is u_{self.pos} (inconsistent schedule)")
        if self.N is not None:
            n1 = min(n1, self.N)
        if n1 <= n0:
            return
        self.stats["schedule_forward_steps"] += n1 - n0
        st = act.storage.name
        if act.write_ics and st != "WORK":
            self._store(act.storage, n0)
        if not act.write_adj_deps:
            yield from self._advance(n0, n1)
            return
        skip_last = (nxt is not None and type(nxt).__name__ == "Reverse" and int(nxt.n1) == n1
                     and st == "WORK")
        for k in range(n0, n1):
            if skip_last and k == n1 - 1:
                # reverse(k) follows: the live state u_k is its dependency.
                self.stats["skipped_steps"] += 1
                return
            if st == "WORK":
                self._work_copy(k)
            else:
                self._store(act.storage, k)   # shares u_k with write_ics at k == n0
            self.adj[k] = act.storage.name if st == "WORK" else act.storage
            yield from self._advance(k, k + 1)

    def _advance(self, n0, n1):
        taken = yield ("forward", n0, n1)
        self.pos = n0 + int(taken)
        if self.pos < n1:
            # An online end (forward returned False) inside this range.
            if self.N is None:
                self.N = self.pos
                self.stats["n_steps"] = self.pos
            else:
                raise AdjointError(f"adjoint: forward stopped at step {self.pos} before n_steps="
                                   f"{self.N}")

    def _reverse(self, actions):
        self._plan(actions, 0)
        N = self.N
        self.next_reverse = N - 1
        for i, act in enumerate(actions):
            kind = type(act).__name__
            if kind == "Forward":
                nxt = actions[i + 1] if i + 1 < len(actions) else None
                yield from self._forward(act, nxt)
                if act.storage.name == "DISK":
                    self._plan(actions, i + 1)
            elif kind == "Reverse":
                for k in range(int(act.n1) - 1, int(act.n0) - 1, -1):
                    if k != self.next_reverse:
                        raise AdjointError(f"adjoint: schedule reverses step {k}, expected "
                                           f"{self.next_reverse}")
                    self._use_adj(k, act.clear_adj_deps)
                    yield ("reverse", k)
                    self.next_reverse = k - 1
            elif kind in ("Copy", "Move"):
                frm, to, n = act.from_storage, act.to_storage, int(act.n)
                if to.name == "WORK":
                    if frm.name == "WORK":
                        continue
                    self._restore(frm, n)
                else:
                    self._restore(frm, n)
                    self._store(to, n)
                if kind == "Move":
                    self._release(frm, n)
                    if to.name == "WORK" and self.adj.get(n) is frm:
                        self.adj[n] = "LIVE"     # the adjoint dependency moved into the state
            else:
                raise AdjointError(f"adjoint: unsupported schedule action {act}")
        if self.next_reverse != -1:
            raise AdjointError(f"adjoint: the schedule ended with steps 0..{self.next_reverse} "
                               f"not reversed")
