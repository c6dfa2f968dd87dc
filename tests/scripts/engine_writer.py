"""One of several concurrent writer processes: NVERSIONS async versions on BRANCH."""
import sys

import numpy as np
from mpi4py import MPI

import vlcc

repo, branch, n, ident = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
x = np.zeros(1000, dtype=np.int64)
with vlcc.Checkpointer(repo, comm=MPI.COMM_SELF, branch=branch, mode="async",
                       local_dir="none") as ck:
    ck.register("x", x)
    for k in range(n):
        x[:] = 1000 * ident + k
        ck.checkpoint(step=k, message=f"{branch} {k}")
