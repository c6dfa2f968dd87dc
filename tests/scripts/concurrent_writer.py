"""Helper for tests/repo/test_concurrent.py (runs under mpiexec -n N python -m mpi4py).

    concurrent_writer.py REPO JOB N MODE IF_MOVED OUT [GO]

One job writing N checkpoints to branch ``main`` of REPO while other jobs do
the same. Each version holds a distributed array ``u``
of 12 elements whose values encode the job and the step,
``job*10**6 + step*10**3 + index``,
so a reader can check every version against what its writer stored. With
GO (a path prefix) the job first creates ``GO.JOB`` and waits until every
``GO.*`` listed in the prefix's ``.jobs`` file exists, so the jobs really
overlap; and again after its first version is committed (``GO.first.*``),
so every job writes on a branch another job moved. Rank 0 writes OUT (JSON): the ids it wrote with their steps, the
steps refused with BranchMovedError, and the error messages."""

import json
import os
import sys
import time

import numpy as np
from mpi4py import MPI

import vlcc


def values(job: int, step: int, n: int) -> np.ndarray:
    return job * 1e6 + step * 1e3 + np.arange(n, dtype=np.float64)


def meet(go, tag: str, job: int, comm, what: str) -> None:
    """Every job reaches this point before any goes on (files ``GO<tag>.JOB``)."""
    if go and comm.rank == 0:
        open(f"{go}{tag}.{job}", "w").close()
        others = open(f"{go}.jobs").read().split()
        deadline = time.monotonic() + 60
        while not all(os.path.exists(f"{go}{tag}.{j}") for j in others):
            if time.monotonic() > deadline:
                raise SystemExit(f"job {job}: the other jobs did not {what}")
            time.sleep(0.01)
    comm.Barrier()


def main():
    path, job, n, mode, if_moved, out = sys.argv[1:7]
    go = sys.argv[7] if len(sys.argv) > 7 else None
    job, n = int(job), int(n)
    comm = MPI.COMM_WORLD
    gshape = 12                  # the same for every job: one job may restore another's version
    cuts = np.linspace(0, gshape, comm.size + 1).astype(int)
    lo, hi = int(cuts[comm.rank]), int(cuts[comm.rank + 1])
    meet(go, "", job, comm, "start")
    u = np.zeros(hi - lo)
    written, refused = [], []
    with vlcc.Checkpointer(path, comm, mode=mode, if_moved=if_moved, chunk_size=16) as ck:
        ck.register("u", u, global_shape=(gshape,), offset=(lo,))
        for step in range(n):
            u[:] = values(job, step, gshape)[lo:hi]
            try:
                v = ck.checkpoint(step=step, attrs={"job": job})
                written.append([v.id, step])
            except vlcc.BranchMovedError as exc:
                refused.append([step, str(exc)])
                ck.restore("branch:main")    # continue from the new head
            if step == 0 and go:
                # Every job's first version is committed (or refused) before any
                # writes its second: each job then has seen a head the other
                # moved, so with if_moved="fail" at least one refusal is certain.
                try:
                    ck.wait()
                except vlcc.BranchMovedError as exc:
                    refused.append([0, str(exc)])
                    ck.restore("branch:main")
                meet(go, ".first", job, comm, "write their first version")
        try:
            ck.wait()
        except vlcc.BranchMovedError as exc:
            refused.append([-1, str(exc)])
    if comm.rank == 0:
        with open(out, "w") as f:
            json.dump({"job": job, "nranks": comm.size, "written": written, "refused": refused}, f)


if __name__ == "__main__":
    main()
