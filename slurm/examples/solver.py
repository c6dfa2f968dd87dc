"""A small heat-equation solver that checkpoints with vlcc, for the sbatch templates.

    mpiexec -n 2 python slurm/examples/solver.py REPO --steps 40 [--every 10] [--sleep 0.2]
            [--array BASE] [--tag NAME] [--alpha 0.1]

* resumes from the newest version of its branch when there is one (a requeued job);
* ``--array BASE``: a SLURM array task continues from BASE on its own branch
  ``task-<id>`` (vlcc.slurm.task_branch), with a per-task diffusion coefficient;
* USR1 or TERM (forwarded by the batch script) → checkpoint at the next step
  boundary → ``scontrol requeue`` → exit 0 (vlcc.slurm.Preemption).

Rows are split over the ranks with a ghost layer; the update of each point uses the
same float operations whatever the decomposition, so a run is bit-exact on any
number of ranks and across restarts.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from mpi4py import MPI

import vlcc
from vlcc.slurm import Preemption, task_branch

NY, NX = 48, 64


def task_alpha(alpha: float, task: int | None) -> float:
    """The per-task parameter of an array task (task None: not an array task)."""
    return alpha if task is None else alpha * (1.0 + 0.25 * int(task))


def initial(rows: np.ndarray) -> np.ndarray:
    """Initial field on global rows ``rows`` (decomposition independent)."""
    y = rows[:, None].astype(np.float64)
    x = np.arange(NX, dtype=np.float64)[None, :]
    return np.sin(0.3 * y) * np.cos(0.2 * x) + 0.01 * y


def exchange(comm, u: np.ndarray) -> None:
    """Fill the ghost rows from the neighbours (zero at the global boundary)."""
    up = comm.rank - 1 if comm.rank > 0 else MPI.PROC_NULL
    down = comm.rank + 1 if comm.rank < comm.size - 1 else MPI.PROC_NULL
    comm.Sendrecv(u[1].copy(), dest=up, recvbuf=u[-1], source=down)
    comm.Sendrecv(u[-2].copy(), dest=down, recvbuf=u[0], source=up)
    if up == MPI.PROC_NULL:
        u[0] = 0.0
    if down == MPI.PROC_NULL:
        u[-1] = 0.0


def advance(u: np.ndarray, alpha: float) -> None:
    """One explicit step on the interior (columns 0 and NX-1 padded with zeros)."""
    c = u[1:-1, 1:-1]
    lap = u[:-2, 1:-1] + u[2:, 1:-1] + u[1:-1, :-2] + u[1:-1, 2:] - 4.0 * c
    c += alpha * lap


def run(comm, repo: str, steps: int, every: int = 10, sleep: float = 0.0,
        array_base: str | None = None, task: int | None = None, alpha: float = 0.1,
        tag: str | None = None, setup=None, log=print) -> vlcc.Version | None:
    """Run (or resume) to ``steps``; returns the last version written."""
    rows = np.array_split(np.arange(NY), comm.size)[comm.rank]
    u = np.zeros((len(rows) + 2, NX + 2))
    with vlcc.Checkpointer(repo, comm=comm) as ck, Preemption(ck) as pre:
        ck.register("heat/u", u, global_shape=(NY, NX), offset=(int(rows[0]), 0), halo=1)
        if setup is not None:
            setup(ck, pre)
        start = 0
        if array_base is not None:
            if task is None and os.environ.get("SLURM_ARRAY_TASK_ID") is not None:
                task = int(os.environ["SLURM_ARRAY_TASK_ID"])
            v = task_branch(ck, array_base, task=task)
            start = v.step or 0
        else:
            try:
                v = ck.restore()      # newest version of the branch: a requeued or resized job
                start = v.step or 0
            except vlcc.NotFoundError:   # on every rank: a fresh run
                u[1:-1, 1:-1] = initial(rows)
        a = task_alpha(alpha, task if array_base is not None else None)
        attrs = {"alpha": a}
        if comm.rank == 0:
            log(f"start at step {start} on {comm.size} rank(s), branch {ck.branch_name}, "
                f"restart {os.environ.get('SLURM_RESTART_COUNT', '0')}", flush=True)
        last = None
        for s in range(start + 1, steps + 1):
            exchange(comm, u)
            advance(u, a)
            if comm.rank == 0:
                log(f"step {s}", flush=True)
            # The safe point: every rank has finished step s.
            if pre.should_stop() and s < steps:
                if comm.rank == 0:
                    log(f"{pre.signal_name}: checkpoint at step {s} and requeue", flush=True)
                pre.checkpoint_and_requeue(s, attrs=attrs)
            if s % every == 0 or s == steps:
                last = ck.checkpoint(step=s, message="periodic", attrs=attrs)
            if sleep:
                time.sleep(sleep)
        if tag and last is not None:
            ck.tag(tag, last)
        if comm.rank == 0:
            log(f"done at step {steps}", flush=True)
        return last


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("repo")
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--every", type=int, default=10, help="checkpoint every N steps")
    p.add_argument("--sleep", type=float, default=0.0, help="seconds per step (stand-in for work)")
    p.add_argument("--array", metavar="BASE", default=None,
                   help="array task: continue from version BASE on branch task-<id>")
    p.add_argument("--task", type=int, default=None, help="run one array task directly (no SLURM)")
    p.add_argument("--alpha", type=float, default=0.1)
    p.add_argument("--tag", default=None, help="tag the final version")
    a = p.parse_args(argv)
    run(MPI.COMM_WORLD, a.repo, a.steps, a.every, a.sleep, a.array, a.task, a.alpha, a.tag)
    return 0


if __name__ == "__main__":
    from vlcc.comm.abort import abort_on_error
    abort_on_error()   # an error on one rank ends every rank (no rank left waiting)
    sys.exit(main())
