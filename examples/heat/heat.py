"""2-D heat equation with vlcc checkpoint/restart (the Python example of issue 3).

Explicit 5-point stencil on an ny x nx grid with zero (Dirichlet) boundaries,
domain-decomposed on a 2-D MPI process grid (MPI.Compute_dims + Create_cart;
uneven splits allowed), one ghost layer exchanged with the four neighbours
every step. The state registered with vlcc:

    heat/u     this rank's block *including* its halo (only the interior is stored)
    heat/step  the number of completed steps   (vlcc.ValueProvider)
    heat/t     the simulated time              (vlcc.ValueProvider)

The result is bit-identical for every rank count: the initial condition is
exact (integers scaled by a power of two) and computed from global indices, and
each point's update is the same sequence of IEEE operations wherever it lives.

    mpiexec -n 2 python heat.py --repo runs/heat --every 50 --out u.npy
    mpiexec -n 3 python heat.py --repo runs/heat --restart --out u.npy   # continue on 3 ranks
    vlcc replay runs/heat@step:100 -- mpiexec -n 3 python heat.py --repo runs/heat \
        --restart --until 150 --check                # replay a region with extra checks
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from mpi4py import MPI

try:
    import vlcc
except ImportError:  # run from a source tree without installing
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    import vlcc

R = 0.2          # alpha * dt / dx^2 (stable for <= 0.25)
DT = 1.0e-3


def split(n: int, parts: int, i: int) -> tuple[int, int]:
    """(start, length) of part ``i`` of ``n`` points cut into ``parts`` (first ones one longer)."""
    base, extra = divmod(n, parts)
    return i * base + min(i, extra), base + (1 if i < extra else 0)


def initial(gy: np.ndarray, gx: np.ndarray, ny: int, nx: int) -> np.ndarray:
    """Exact initial field from global indices: a striped background and a hot square."""
    iy, ix = np.meshgrid(gy, gx, indexing="ij")
    v = ((iy * 7 + ix * 13) % 17).astype(np.float64) / 16.0
    hot = (abs(2 * iy - ny) < ny // 4) & (abs(2 * ix - nx) < nx // 4)
    v[hot] += 4.0
    return v


class Heat:
    def __init__(self, comm, ny: int, nx: int):
        dims = MPI.Compute_dims(comm.size, [0, 0])
        self.cart = comm.Create_cart(dims, periods=[False, False], reorder=False)
        py, px = self.cart.Get_coords(self.cart.rank)
        self.ny, self.nx = ny, nx
        self.y0, self.ly = split(ny, dims[0], py)
        self.x0, self.lx = split(nx, dims[1], px)
        if self.ly == 0 or self.lx == 0:
            raise SystemExit(f"grid {ny}x{nx} too small for {comm.size} ranks ({dims})")
        self.up, self.down = self.cart.Shift(0, 1)      # neighbours in y (rows)
        self.left, self.right = self.cart.Shift(1, 1)   # neighbours in x (columns)
        self.u = np.zeros((self.ly + 2, self.lx + 2), np.float64)
        self.u[1:-1, 1:-1] = initial(np.arange(self.y0, self.y0 + self.ly),
                                     np.arange(self.x0, self.x0 + self.lx), ny, nx)
        self.step, self.t = 0, 0.0
        self._col_s = np.empty(self.ly, np.float64)
        self._col_r = np.empty(self.ly, np.float64)

    def exchange(self) -> None:
        """Refresh the ghost layer from the neighbours (PROC_NULL at the boundary: stays 0)."""
        u, c = self.u, self.cart
        # rows are contiguous
        c.Sendrecv(u[1, 1:-1], self.up, 0, u[-1, 1:-1], self.down, 0)
        c.Sendrecv(u[-2, 1:-1], self.down, 1, u[0, 1:-1], self.up, 1)
        # columns go through contiguous buffers
        self._col_s[:] = u[1:-1, 1]
        c.Sendrecv(self._col_s, self.left, 2, self._col_r, self.right, 2)
        if self.right != MPI.PROC_NULL:
            u[1:-1, -1] = self._col_r
        self._col_s[:] = u[1:-1, -2]
        c.Sendrecv(self._col_s, self.right, 3, self._col_r, self.left, 3)
        if self.left != MPI.PROC_NULL:
            u[1:-1, 0] = self._col_r

    def advance(self) -> None:
        u = self.u
        c = u[1:-1, 1:-1]
        lap = u[:-2, 1:-1] + u[2:, 1:-1] + u[1:-1, :-2] + u[1:-1, 2:] - 4.0 * c
        c += R * lap          # lap is a new array: the update reads only old values
        self.step += 1
        self.t += DT
        self.exchange()

    def gather(self) -> np.ndarray | None:
        """The global field on rank 0 (None elsewhere)."""
        parts = self.cart.gather((self.y0, self.x0, np.ascontiguousarray(self.u[1:-1, 1:-1])), root=0)
        if self.cart.rank != 0:
            return None
        out = np.empty((self.ny, self.nx), np.float64)
        for y0, x0, blk in parts:
            out[y0:y0 + blk.shape[0], x0:x0 + blk.shape[1]] = blk
        return out


def check(comm, h: Heat, bound: float) -> None:
    """--check: one allreduce per step, so a violation on one rank stops every rank."""
    c = h.u[1:-1, 1:-1]
    bad = not np.isfinite(c).all() or c.min(initial=0.0) < 0.0 or c.max(initial=0.0) > bound
    who = comm.allreduce(comm.rank if bad else comm.size, op=MPI.MIN)
    if who < comm.size:
        if comm.rank == who:
            print(f"heat: --check failed at step {h.step} on rank {who}: field not finite or "
                  f"outside [0, {bound}]", file=sys.stderr, flush=True)
        raise SystemExit(1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nx", type=int, default=128)
    ap.add_argument("--ny", type=int, default=96)
    ap.add_argument("--steps", type=int, default=500, help="total number of steps of the run")
    ap.add_argument("--every", type=int, default=50, help="checkpoint every N steps (needs --repo)")
    ap.add_argument("--repo", help="vlcc repository; without it the run is not checkpointed")
    ap.add_argument("--restart", action="store_true",
                    help="continue from the newest version of the repository if it has one")
    ap.add_argument("--out", help="rank 0 writes the final global field here (.npy)")
    ap.add_argument("--delay", type=float, default=0.0,
                    help="sleep this many seconds per step (slows the demo down; no effect on results)")
    ap.add_argument("--until", type=int, default=None,
                    help="stop after this step (checkpointed), e.g. to replay a region")
    ap.add_argument("--check", action="store_true",
                    help="check every step that the field is finite and obeys the maximum "
                         "principle (0 <= u <= max of the initial field); exit 1 on all ranks "
                         "at the first violation, naming step and rank")
    a = ap.parse_args(argv)
    if a.restart and not a.repo:
        ap.error("--restart needs --repo")

    comm = MPI.COMM_WORLD
    h = Heat(comm, a.ny, a.nx)
    ck = None
    if a.repo:
        ck = vlcc.Checkpointer(a.repo, comm=comm)
        ck.register("heat/u", h.u, global_shape=(a.ny, a.nx), offset=(h.y0, h.x0), halo=1)
        ck.register("heat/step", vlcc.ValueProvider(get=lambda: h.step,
                                                    set=lambda v: setattr(h, "step", v)))
        ck.register("heat/t", vlcc.ValueProvider(get=lambda: h.t, set=lambda v: setattr(h, "t", v)))
        if a.restart and ck.log():
            v = ck.restore()
            if comm.rank == 0:
                print(f"heat: restarted from version {v.id} (step {h.step}, written on "
                      f"{v.nranks} ranks) on {comm.size} ranks", flush=True)
    h.exchange()   # fresh halos, after the initial condition or the restore

    last = a.steps if a.until is None else min(a.until, a.steps)
    bound = comm.allreduce(float(h.u[1:-1, 1:-1].max(initial=0.0)), op=MPI.MAX) if a.check else 0
    while h.step < last:
        h.advance()
        if a.delay:
            time.sleep(a.delay)
        if a.check:
            check(comm, h, bound)
        if ck is not None and (h.step % a.every == 0 or h.step == last):
            v = ck.checkpoint(step=h.step, message=f"heat step {h.step}", attrs={"t": h.t})
            if comm.rank == 0:
                print(f"heat: step {h.step} committed as {v.id}", flush=True)

    g = h.gather()
    if comm.rank == 0:
        if a.out:
            np.save(a.out, g)
        print(f"heat: done, step {h.step}, t={h.t:.6f}, ranks {comm.size} "
              f"{MPI.Compute_dims(comm.size, [0, 0])}, sum={g.sum():.12e}", flush=True)
    if ck is not None:
        ck.close()
    h.cart.Free()
    return 0


if __name__ == "__main__":
    from vlcc.comm.abort import abort_on_error
    abort_on_error()   # an error on one rank ends every rank (no rank left waiting)
    sys.exit(main())
