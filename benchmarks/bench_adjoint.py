#!/usr/bin/env python
"""Adjoint schedules: vlcc.adjoint vs pyrevolve, prefetch on/off, online vs offline.

    python benchmarks/bench_adjoint.py [--ny 512] [--nx 1024] [--steps 100] [--ram 10]
                                       [--repeat 3] [--disk 6]

1. One problem (1 rank, a float64 field of ny*nx (4 MiB by default), 100 steps, 10
   snapshots in memory): a nonlinear 5-point stencil, J = |u_N|^2/2, its discrete adjoint.
   pyrevolve's MemoryRevolver and vlcc's Adjoint(schedule="revolve") compute the same
   gradient (checked bit for bit); both forward operators are double-buffered (the
   stencil reads the previous field), so pyrevolve's adjoint reads u_n from that buffer
   after its re-run of step n, vlcc's from the restored field. Times are the best of
   --repeat alternated runs; forward-step counts of both.
2. A RAM + disk schedule (multistage, 2 in memory + --disk on disk: versions in the
   repository) with prefetch on (the exact restore order declared by ck.plan) and off:
   memory-tier hit rate and time.
3. Online (n unknown) vs offline revolve: recomputations (forward steps - n).
Prints ratios and a final SUMMARY line.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np

import vlcc
from vlcc.adjoint import Adjoint


class Stencil:
    """u <- u + a (lap u) - b u^3 on the interior (zero boundary), double-buffered."""

    A, B = 0.2, 0.05

    def __init__(self, ny, nx):
        self.u = np.zeros((ny, nx))
        self.prev = np.zeros((ny, nx))
        self.lam = np.zeros((ny, nx))
        self.tmp = np.zeros((ny - 2, nx - 2))
        self.calls = 0

    def init(self):
        ny, nx = self.u.shape
        y = np.linspace(0, 1, ny)[:, None]
        x = np.linspace(0, 1, nx)[None, :]
        self.u[...] = np.sin(np.pi * y) * np.sin(2 * np.pi * x)
        self.u[0, :] = self.u[-1, :] = self.u[:, 0] = self.u[:, -1] = 0
        self.lam[...] = 0

    def step(self, n=0):
        self.calls += 1
        np.copyto(self.prev, self.u)
        p = self.prev
        c = p[1:-1, 1:-1]
        lap = (p[:-2, 1:-1] + p[2:, 1:-1]) + (p[1:-1, :-2] + p[1:-1, 2:]) - 4.0 * c
        self.u[1:-1, 1:-1] = c + self.A * lap - self.B * (c * c * c)

    def adjoint(self, u):
        """lam <- J(u)^T lam."""
        l = self.lam
        lc = l[1:-1, 1:-1]
        c = u[1:-1, 1:-1]
        nb = np.zeros_like(l)
        nb[1:-1, 1:-1] = lc
        s = (nb[:-2, 1:-1] + nb[2:, 1:-1]) + (nb[1:-1, :-2] + nb[1:-1, 2:])
        l[1:-1, 1:-1] = lc * (1.0 - 4.0 * self.A - 3.0 * self.B * (c * c)) + self.A * s


# -- pyrevolve -------------------------------------------------------------------------

def run_pyrevolve(prob, steps, ram):
    import pyrevolve as pr

    class Ck(pr.Checkpoint):
        @property
        def dtype(self):
            return prob.u.dtype

        @property
        def size(self):
            return prob.u.size

        def get_data(self, t):
            return [prob.u]

        def get_data_location(self, t):
            return [prob.u]

    class Fwd(pr.Operator):
        def apply(self, t_start, t_end):
            for t in range(t_start, t_end):
                prob.step(t)

    class Rev(pr.Operator):
        def apply(self, t_start, t_end):
            prob.adjoint(prob.prev)   # u_t: the previous buffer after (re-)running step t

    prob.init()
    prob.calls = 0
    rv = pr.MemoryRevolver(Ck(), Fwd(), Rev(), ram, steps)
    t0, c0 = time.perf_counter(), time.process_time()
    rv.apply_forward()
    prob.lam[...] = prob.u
    rv.apply_reverse()
    return ((time.perf_counter() - t0, time.process_time() - c0), prob.calls, prob.lam.copy())


def run_vlcc(prob, steps, ram, repo, schedule="revolve", disk=0, mode="sync", prefetch=True):
    with vlcc.Checkpointer(repo, mode=mode) as ck:
        ck.register("u", prob.u)
        prob.init()
        prob.calls = 0
        ad = Adjoint(ck, prob.step, lambda n: prob.adjoint(prob.u), steps, schedule=schedule,
                     ram=ram, disk=disk, prefetch=prefetch)
        t0, c0 = time.perf_counter(), time.process_time()
        ad.run_forward()
        prob.lam[...] = prob.u
        ad.run_reverse()
        dt = (time.perf_counter() - t0, time.process_time() - c0)
    return dt, prob.calls, prob.lam.copy(), ad.stats


def online_vs_offline(cases):
    """Forward steps of online and offline revolve on a tiny state (counts only)."""
    from checkpoint_schedules import optimal_steps_binomial
    rows = []
    d = tempfile.mkdtemp(prefix="vlcc-bench-adj-")
    try:
        for n, s in cases:
            u = np.zeros(4)
            end = n
            with vlcc.Checkpointer(os.path.join(d, f"r{n}-{s}")) as ck:
                ck.register("u", u)

                def fwd(k):
                    if k >= end:
                        return False
                    u[:] += 1.0
                ad = Adjoint(ck, fwd, lambda k: None, None, schedule="online", ram=s)
                ad.run_forward()
                ad.run_reverse()
            offline = optimal_steps_binomial(n, s) - n + 1
            rows.append((n, s, ad.stats["forward_steps"], offline))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ny", type=int, default=512)
    ap.add_argument("--nx", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--ram", type=int, default=10)
    ap.add_argument("--disk", type=int, default=6)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args(argv)
    mib = a.ny * a.nx * 8 / 2 ** 20
    prob = Stencil(a.ny, a.nx)
    base = tempfile.mkdtemp(prefix="vlcc-bench-adj-")
    try:
        print(f"== 1. revolve, 1 rank, state {mib:.1f} MiB, {a.steps} steps, {a.ram} snapshots "
              f"in memory")
        tp, tv = [], []
        for r in range(a.repeat):
            t, calls_p, g_p = run_pyrevolve(prob, a.steps, a.ram)
            tp.append(t)
            t, calls_v, g_v, st = run_vlcc(prob, a.steps, a.ram, os.path.join(base, f"v{r}"))
            tv.append(t)
        same = np.array_equal(g_p, g_v)
        # Wall time (best of the alternated runs) and CPU time of this process (threads
        # included): on a shared machine the CPU time is the steadier of the two.
        wp, wv = min(t[0] for t in tp), min(t[0] for t in tv)
        cp, cv = min(t[1] for t in tp), min(t[1] for t in tv)
        ratio, cratio = wv / wp, cv / cp
        print(f"pyrevolve MemoryRevolver: {wp:.3f} s wall, {cp:.3f} s CPU, forward steps {calls_p}")
        print(f"vlcc Adjoint(revolve):    {wv:.3f} s wall, {cv:.3f} s CPU, forward steps {calls_v} "
              f"(schedule count {st['schedule_forward_steps']}, skipped {st['skipped_steps']})")
        print(f"vlcc time / pyrevolve = {ratio:.3f} wall, {cratio:.3f} CPU; gradients "
              f"bit-identical: {same}")

        print(f"== 2. multistage, 2 snapshots in memory + {a.disk} on disk (vlcc versions), "
              f"prefetch on vs off")
        res = {}
        for pf in (True, False):
            best = None
            for r in range(max(1, a.repeat - 1)):
                repo = os.path.join(base, f"ms-{pf}-{r}")
                t, calls, g, st = run_vlcc(prob, a.steps, 2, repo, "multistage", a.disk,
                                           prefetch=pf)
                if best is None or t[0] < best[0]:
                    best = (t[0], st)
                same_ms = np.array_equal(g, g_v)
            t, st = best
            n_r = st["restores"]["disk"]
            hit = st["prefetch_hits"] / n_r if n_r else float("nan")
            res[pf] = (t, hit, st)
            print(f"prefetch {'on ' if pf else 'off'}: {t:.3f} s, disk stores "
                  f"{st['stores']['disk']}, disk restores {n_r}, memory-tier hit rate "
                  f"{hit:.2f}, forward steps {st['forward_steps']}, gradient equal {same_ms}")
        pf_ratio = res[True][0] / res[False][0]
        print(f"time prefetch on / off = {pf_ratio:.3f}")

        print("== 3. online (n unknown) vs offline revolve: recomputations = forward steps - n")
        rows = online_vs_offline([(50, 5), (100, 10), (100, 5), (200, 10), (500, 10)])
        worst = 0.0
        for n, s, on, off in rows:
            rr = (on - n) / max(1, off - n)
            worst = max(worst, rr)
            print(f"n={n:4d} s={s:3d}: online {on - n:5d}, offline {off - n:5d} "
                  f"recomputations (ratio {rr:.2f})")
        print(f"SUMMARY adjoint: vlcc/pyrevolve time {ratio:.3f} wall {cratio:.3f} CPU (forward steps vlcc {calls_v} "
              f"vs pyrevolve {calls_p}, gradients equal {same}); multistage prefetch hit rate "
              f"{res[True][1]:.2f} on / {res[False][1]:.2f} off, time on/off {pf_ratio:.3f}; "
              f"online/offline recomputations worst {worst:.2f}")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
