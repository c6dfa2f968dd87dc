"""A job on simulated nodes (VLCC_NODE_ID = rank * NODES // size) with a
protected node-local tier, for tests/engine/test_node_loss.py.

write REPO LOCAL REDUNDANCY NODES STEPS KILL_NODE: checkpoint steps 1..STEPS
(persist="never"), wait for the last to commit, print it, then the ranks of
node KILL_NODE SIGKILL themselves (mpiexec then ends the others).
restore REPO LOCAL REDUNDANCY NODES STEPS: restore the newest version on this
rank count, check it bit-exact, print "OK <id>"."""

import os
import signal
import sys
import time

import numpy as np
from mpi4py import MPI

import vlcc

N = 50_000          # elements per rank at the writing rank count


def state(step: int, total: int) -> np.ndarray:
    return (np.arange(total, dtype=np.float64) * 1.5 + step) % 997.0


def main():
    comm = MPI.COMM_WORLD
    phase, repo, local, red, nodes, steps = sys.argv[1:7]
    nodes, steps = int(nodes), int(steps)
    os.environ["VLCC_NODE_ID"] = str(comm.rank * nodes // comm.size)
    kw = dict(mode="async", local_dir=local, redundancy=red, persist="never")
    if phase == "write":
        total = N * comm.size
        lo, hi = comm.rank * N, (comm.rank + 1) * N
        u = np.zeros(hi - lo)
        mine = np.zeros(7, np.int64)
        ck = vlcc.Checkpointer(repo, comm, **kw)
        ck.register("u", u, global_shape=(total,), offset=(lo,))
        ck.register("mine", mine)
        ck.register("meta", vlcc.ValueProvider(get=lambda: {"total": total},
                                                set=lambda v: None))
        for s in range(1, steps + 1):
            u[:] = state(s, total)[lo:hi]
            mine[:] = comm.rank * 100 + s
            v = ck.checkpoint(step=s)
        ck.wait()
        if comm.rank == 0:
            print("COMMITTED", v.id, flush=True)
        comm.Barrier()
        if int(os.environ["VLCC_NODE_ID"]) == int(sys.argv[7]):
            os.kill(os.getpid(), signal.SIGKILL)   # the node dies: no close, no cleanup
        time.sleep(60)                              # the others are ended by mpiexec
        return
    ck = vlcc.Checkpointer(repo, comm, **kw)
    v = ck.repository.log()[0]
    total = v.nranks * N
    lo, hi = comm.rank * total // comm.size, (comm.rank + 1) * total // comm.size
    u = np.zeros(hi - lo)
    ck.register("u", u, global_shape=(total,), offset=(lo,))
    ck.register("meta", vlcc.ValueProvider(get=lambda: {"total": total}, set=lambda v: None))
    got = ck.restore(strict=False)
    ok = np.array_equal(u, state(steps, total)[lo:hi])
    oks = comm.gather(ok)
    if comm.rank == 0:
        print("OK" if all(oks) else f"BAD {oks}", got.id, flush=True)
    ck.close()


if __name__ == "__main__":
    main()
