"""Preemption where scontrol is missing: checkpoint_and_requeue must end every rank
with RequeueExit.EXIT_CODE after a durable checkpoint. Rank 0 signals itself.

    slurm_requeue_exit.py REPO
"""

import os
import signal
import sys

import numpy as np
from mpi4py import MPI

import vlcc
from vlcc.slurm import Preemption

comm = MPI.COMM_WORLD
u = np.full(4, float(comm.rank))
with vlcc.Checkpointer(sys.argv[1], comm=comm) as ck, Preemption(ck) as pre:
    ck.register("u", u)
    for step in range(1, 100):
        u += 1.0
        if step == 3 and comm.rank == 0:
            os.kill(os.getpid(), signal.SIGUSR1)
        if pre.should_stop():
            print(f"rank {comm.rank} stops at step {step}", flush=True)
            pre.checkpoint_and_requeue(step)
        comm.Barrier()
print("not reached", flush=True)
sys.exit(1)
