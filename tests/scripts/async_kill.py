"""Helper for tests/repo/test_doctor.py (runs under mpiexec -n N python -m mpi4py,
and is killed with SIGKILL by the test).

    async_kill.py REPO   async mode: one committed version (printed as
        ``committed ID``), then versions left pending — flushed but not
        committed (the next vlcc call would commit them), holding the
        repository's writer locks — printed as ``pending ID ID``; then sleeps
        until killed. The node-local tier is $VLCC_LOCAL_DIR (set by the test)."""

import os
import sys
import time

import numpy as np
from mpi4py import MPI

import vlcc

N = 200_000            # float64 per rank: 1.6 MB per version and rank
comm = MPI.COMM_WORLD
repo = sys.argv[1]


def say(msg):
    if comm.rank == 0:
        print(msg, flush=True)


u = np.arange(N, dtype=np.float64) + comm.rank * N
ck = vlcc.Checkpointer(repo, comm=comm, mode="async", chunk_size=1 << 16)
ck.register("u", u, global_shape=(N * comm.size,), offset=(comm.rank * N,))
v = ck.checkpoint(step=0)
ck.wait()
say(f"committed {v.id}")
pending = []
for step in (1, 2):
    u += 1.0
    pending.append(ck.checkpoint(step=step).id)
# wait (without a collective call, which would commit them) until every
# rank's data of the pending versions is in the repository
deadline = time.time() + 60
while time.time() < deadline and not all(
        os.path.exists(os.path.join(repo, "data", vid, f"r{comm.rank}.idx.json")) for vid in pending):
    time.sleep(0.05)
comm.Barrier()
say("pending " + " ".join(pending))   # no vlcc call from here on: nothing commits them
time.sleep(600)
