"""Helper for tests/repo/test_concurrent.py (runs under mpiexec -n 1 python -m mpi4py).

    prune_race_writer.py REPO MODE ROUNDS OUT COUNTER

Two writers in one process on branch ``main`` of REPO, while another process
runs ``prune(keep_last=2)`` + ``gc`` in a loop and writes how many rounds it
finished to the file COUNTER. Per round writer A checkpoints once, then B
twice, then the script waits until the pruner finished one more round: so
A's last version (its dedup parent, whose chunk table A holds in memory) is
usually pruned and gc'ed before A's next checkpoint. A's array changes one
chunk per step (the others dedup against its parent); B's differs from A's.
A's versions of odd steps are tagged (prune keeps them), so each of them
was written after its parent (an even step) was pruned. Values encode
writer and step. OUT (JSON): [id, writer, step] per version."""

import json
import os
import sys
import time

import numpy as np
from mpi4py import MPI

import vlcc

N = 64            # float64 elements: 4 chunks of 128 bytes


def values(writer: int, step: int) -> np.ndarray:
    x = np.arange(N, dtype=np.float64) + writer * 1e6
    if writer == 0:   # A: chunk (step % 4) changes, the others keep their last values
        for s in range(step + 1):
            k = s % 4
            x[16 * k:16 * (k + 1)] = np.arange(16) + s * 1e3
    else:
        x += step * 1e3
    return x


def rounds_done(counter: str) -> int:
    try:
        with open(counter) as f:
            return int(f.read() or 0)
    except (OSError, ValueError):
        return 0


def main():
    path, mode, rounds, out, counter = sys.argv[1:6]
    comm = MPI.COMM_WORLD
    made = []
    a, b = np.zeros(N), np.zeros(N)
    kw = dict(mode=mode, chunk_size=128, coalesce_below=0)
    with vlcc.Checkpointer(path, comm, **kw) as ck_a, vlcc.Checkpointer(path, comm, **kw) as ck_b:
        ck_a.register("x", a)
        ck_b.register("x", b)
        step_b = 0
        for step in range(int(rounds)):
            a[:] = values(0, step)
            v = ck_a.checkpoint(step=step)
            made.append([v.id, 0, step])
            ck_a.wait()
            if step % 2:             # kept by prune: checked by the test
                ck_a.tag(f"a{step}", v.id)
            for _ in range(2):
                b[:] = values(1, step_b)
                made.append([ck_b.checkpoint(step=step_b).id, 1, step_b])
                step_b += 1
            ck_b.wait()
            seen = rounds_done(counter)
            deadline = time.monotonic() + 30
            while rounds_done(counter) <= seen and time.monotonic() < deadline:
                time.sleep(0.01)
    if comm.rank == 0:
        with open(out, "w") as f:
            json.dump(made, f)


if __name__ == "__main__":
    main()
