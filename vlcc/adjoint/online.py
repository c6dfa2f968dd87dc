"""Online checkpointing: the number of steps is not known in advance.

Forward: snapshots are placed by *periodic thinning* (Stumm & Walther's online
schemes and Hinze & Sternberg's keep the same invariant): snapshots sit at the
multiples of a spacing ``d`` (starting at 1); when all ``ram`` slots are full
the odd multiples are dropped and ``d`` doubles. So at any time the snapshots
cover the run evenly with intervals of at most ``2 n / ram`` steps, whatever
``n`` turns out to be.

Reverse (``n_steps`` now known): the intervals are reversed from the last to
the first, each with an offline binomial (revolve) schedule over the slots
that are free at that time (``ram`` minus the snapshots still held before it).
The reverse schedule is made of checkpoint_schedules' actions, so one executor
runs every schedule; the thinning drops are applied by the executor directly.
"""

from __future__ import annotations


class OnlineRevolve:
    """Snapshot placement while the forward runs, offline revolve per interval after."""

    def __init__(self, ram: int):
        self.ram = int(ram)
        self.d = 1
        self.held: list[int] = []
        self.max_n: int | None = None

    def on_reach(self, n: int) -> tuple[bool, list[int]]:
        """The forward state is u_n: (store u_n?, steps whose snapshots to drop first)."""
        if n % self.d:
            return False, []
        drops: list[int] = []
        if len(self.held) >= self.ram:
            drops = [c for c in self.held if (c // self.d) % 2 == 1]
            self.held = [c for c in self.held if c not in drops]
            self.d *= 2
            if n % self.d:
                return False, drops
        self.held.append(n)
        return True, drops

    def finalize(self, n: int) -> None:
        self.max_n = int(n)

    def reverse_actions(self) -> list:
        """The reverse schedule once ``finalize(N)`` was called: per interval, from
        the last: take u_a out of its slot and run revolve over [a, b)."""
        from checkpoint_schedules import (EndForward, EndReverse, Forward, Move, Reverse, Revolve,
                                          StorageType)
        N = self.max_n
        cps = [c for c in self.held if c < N]
        bounds = cps[1:] + [N]
        out: list = []
        for i in range(len(cps) - 1, -1, -1):
            a, b = cps[i], bounds[i]
            L, slots = b - a, self.ram - i
            out.append(Move(a, StorageType.RAM, StorageType.WORK))
            if L == 1:
                out.append(Reverse(a + 1, a, True))
                continue
            for act in Revolve(L, max(1, slots)):
                if isinstance(act, EndReverse):
                    break
                if isinstance(act, EndForward):
                    continue
                out.append(_shift(act, a))
        return out


def _shift(act, a: int):
    from checkpoint_schedules import Copy, Forward, Move, Reverse
    if isinstance(act, Forward):
        return Forward(act.n0 + a, act.n1 + a, act.write_ics, act.write_adj_deps, act.storage)
    if isinstance(act, Reverse):
        return Reverse(act.n1 + a, act.n0 + a, act.clear_adj_deps)
    if isinstance(act, Copy):
        return Copy(act.n + a, act.from_storage, act.to_storage)
    if isinstance(act, Move):
        return Move(act.n + a, act.from_storage, act.to_storage)
    return act
