"""Adjoint of the 1-D viscous Burgers equation with vlcc.adjoint (Python, MPI).

    mpiexec -n 2 python examples/adjoint/burgers.py REPO [--n 128] [--steps 200]
                [--schedule revolve] [--ram 8] [--disk 0] [--mode sync]

Forward (periodic grid of n points split in blocks over the ranks, ghost width 1):
    u_i <- u_i - dt u_i (u_{i+1} - u_{i-1}) / 2h + c (u_{i+1} - 2 u_i + u_{i-1}),  c = nu dt / h^2
Cost J = h/2 sum u_N^2. The discrete adjoint (the transposed Jacobian of one step)
runs backwards with the state u_n restored by vlcc; only u is registered. The
gradient dJ/du_0 is checked against central finite differences of J.
"""

from __future__ import annotations

import argparse

import numpy as np
from mpi4py import MPI

import vlcc
from vlcc.adjoint import Adjoint


class Burgers:
    """One rank's block of the periodic grid, with its halo exchange."""

    def __init__(self, comm, n: int = 128, nu: float = 0.01, dt: float = 1e-3):
        self.comm, self.n = comm, n
        self.h = 1.0 / n
        self.nu, self.dt = nu, dt
        self.c = nu * dt / self.h ** 2
        r, s = comm.rank, comm.size
        self.off = n * r // s
        self.nl = n * (r + 1) // s - self.off
        self.left, self.right = (r - 1) % s, (r + 1) % s
        self.u = np.zeros(self.nl + 2)          # registered: the state
        self.lam = np.zeros(self.nl + 2)        # not registered: the adjoint

    def initial(self, eps: float = 0.0, v: np.ndarray | None = None) -> None:
        x = (self.off + np.arange(self.nl)) * self.h
        self.u[1:-1] = np.sin(2 * np.pi * x) + 0.5 * np.sin(4 * np.pi * x) + 0.2
        if v is not None:
            self.u[1:-1] += eps * v

    def halo(self, a: np.ndarray) -> None:
        c = self.comm
        if c.size == 1:
            a[0], a[-1] = a[-2], a[1]
            return
        a[-1] = c.sendrecv(a[1], dest=self.left, source=self.right, sendtag=7, recvtag=7)
        a[0] = c.sendrecv(a[-2], dest=self.right, source=self.left, sendtag=8, recvtag=8)

    def step(self, n: int = 0) -> None:
        u = self.u
        self.halo(u)
        um, uc, up = u[:-2], u[1:-1], u[2:]
        new = uc - self.dt * uc * (up - um) / (2 * self.h) + self.c * (up - 2 * uc + um)
        u[1:-1] = new

    def adjoint_step(self, n: int = 0) -> None:
        u, lam = self.u, self.lam
        self.halo(u)               # halos are not stored in snapshots: rebuild them
        self.halo(lam)
        k = self.dt / (2 * self.h)
        um, uc, up = u[:-2], u[1:-1], u[2:]
        lm, lc, lp = lam[:-2], lam[1:-1], lam[2:]
        new = (lc * (1 - k * (up - um) - 2 * self.c) + lm * (self.c - k * um)
               + lp * (self.c + k * up))
        lam[1:-1] = new

    def cost(self) -> float:
        return 0.5 * self.h * self.comm.allreduce(float(np.dot(self.u[1:-1], self.u[1:-1])))

    def final_adjoint(self) -> None:
        self.lam[1:-1] = self.h * self.u[1:-1]


def gradient(ck, prob: Burgers, steps: int, schedule="revolve", ram: int = 8, disk: int = 0,
             **opts) -> tuple[np.ndarray, dict]:
    """dJ/du_0 (this rank's block) with the state checkpointed by vlcc."""
    ck.register("burgers/u", prob.u, global_shape=(prob.n,), offset=(prob.off,), halo=1)
    try:
        prob.initial()
        prob.lam[:] = 0
        ad = Adjoint(ck, prob.step, prob.adjoint_step, steps, schedule=schedule, ram=ram,
                     disk=disk, **opts)
        ad.run_forward()
        prob.final_adjoint()
        ad.run_reverse()
        return prob.lam[1:-1].copy(), ad.stats
    finally:
        ck.unregister("burgers/u")


def fd_check(prob: Burgers, steps: int, grad: np.ndarray, eps: float = 1e-6, seed: int = 1):
    """(directional derivative by central differences, <grad, v>) along a random v."""
    rng = np.random.default_rng(seed + prob.comm.rank)
    v = rng.standard_normal(prob.nl)

    def J(e):
        prob.initial(e, v)
        for k in range(steps):
            prob.step(k)
        return prob.cost()
    fd = (J(eps) - J(-eps)) / (2 * eps)
    ad = prob.comm.allreduce(float(np.dot(grad, v)))
    return fd, ad


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("repo")
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--schedule", default="revolve")
    ap.add_argument("--ram", type=int, default=8)
    ap.add_argument("--disk", type=int, default=0)
    ap.add_argument("--mode", default="sync")
    a = ap.parse_args(argv)
    comm = MPI.COMM_WORLD
    prob = Burgers(comm, a.n)
    with vlcc.Checkpointer(a.repo, comm=comm, mode=a.mode) as ck:
        grad, stats = gradient(ck, prob, a.steps, a.schedule, a.ram, a.disk)
    fd, ad = fd_check(prob, a.steps, grad)
    rel = abs(fd - ad) / max(abs(fd), 1e-300)
    if comm.rank == 0:
        print(f"burgers: {a.schedule} ram={a.ram} disk={a.disk} ranks={comm.size}: "
              f"forward steps {stats['forward_steps']} (schedule {stats['schedule_forward_steps']}), "
              f"reverse {stats['reverse_steps']}, <grad,v> {ad:.10e} vs FD {fd:.10e} "
              f"(rel {rel:.1e})")
    return 0 if rel < 1e-5 else 1


if __name__ == "__main__":
    from vlcc.comm.abort import abort_on_error
    abort_on_error()   # an error on one rank ends every rank (no rank left waiting)
    raise SystemExit(main())
