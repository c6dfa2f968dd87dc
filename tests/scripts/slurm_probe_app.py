"""The example solver with a probe provider whose capture, at one checkpoint of the
first run, asks SLURM to signal this job and waits until the signal has reached
this rank: the signal arrives in the middle of a checkpoint, for real.

    slurm_probe_app.py REPO STEPS EVERY FIRE_AT_STEP
"""

import importlib.util
import os
import subprocess
import sys
import time

import numpy as np
from mpi4py import MPI

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "solver", os.path.join(HERE, "..", "..", "slurm", "examples", "solver.py"))
solver = importlib.util.module_from_spec(spec)
spec.loader.exec_module(solver)


class Probe:
    def __init__(self, comm, pre, fire_at):
        self.comm, self.pre, self.fire_at, self.captures = comm, pre, fire_at, 0

    def capture(self):
        self.captures += 1
        first_run = os.environ.get("SLURM_RESTART_COUNT", "0") == "0"
        if first_run and self.captures == self.fire_at:
            if self.comm.rank == 0:
                subprocess.run(["scancel", "--signal=USR1", "--batch", os.environ["SLURM_JOB_ID"]],
                               check=True, timeout=60)
            t0 = time.time()
            while not self.pre.requested and time.time() - t0 < 60:
                time.sleep(0.05)   # Python runs the handler between these sleeps
            print(f"rank {self.comm.rank}: signal received during checkpoint "
                  f"{self.captures}: {self.pre.requested}", flush=True)
        return {"captures": np.array([self.captures])}

    def restore(self, d):
        self.captures = int(np.asarray(d["captures"])[0])


def main():
    repo, steps, every, fire_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    comm = MPI.COMM_WORLD

    def setup(ck, pre):
        ck.register("probe", Probe(comm, pre, fire_at))
    solver.run(comm, repo, steps, every, sleep=0.2, setup=setup)


if __name__ == "__main__":
    main()
