"""VLCC_KEEP_LAST=1 (issue 27): a sync checkpoint keeps a copy of its state
in the memory tier, so a restore right after it reads memory, not the disk
(O_DIRECT writes leave nothing in the page cache). The copy is the state at
checkpoint time, whatever the application changed since; without the
setting restores read the disk. Serial and at any rank count."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest
from mpi4py import MPI

import vlcc


def shared_dir(comm, tmp_path) -> str:
    return comm.bcast(str(tmp_path) if comm.rank == 0 else None, root=0)


@pytest.mark.mpi
@pytest.mark.parametrize("keep", ["1", "0"])
def test_restore_after_checkpoint(tmp_path, monkeypatch, keep):
    monkeypatch.setenv("VLCC_KEEP_LAST", keep)
    comm = MPI.COMM_WORLD
    repo = os.path.join(shared_dir(comm, tmp_path), "repo")
    n = 1 << 18
    u = np.random.default_rng(comm.rank).standard_normal(n)
    want = []
    with vlcc.Checkpointer(repo, comm=comm) as ck:
        ck.register("u", u, global_shape=(n * comm.size,), offset=(n * comm.rank,))
        for step in range(3):
            u[0] = step
            v = ck.checkpoint(step=step)
            want.append((v.id, u.copy()))
        u[:] = -1                       # the application moves on
        ck.restore()
        assert np.array_equal(u, want[-1][1])
        assert ck.stats["hits"] == (1 if keep == "1" else 0)
        u[:] = -1
        ck.restore(want[0][0])
        assert np.array_equal(u, want[0][1])


@pytest.mark.mpi
def test_kept_copy_is_the_checkpointed_state_not_the_disk(tmp_path, monkeypatch):
    """The memory copy is what was checkpointed: a data file damaged after the
    commit does not reach a restore served from memory, and a fresh
    Checkpointer (no memory copy) still finds the damage."""
    monkeypatch.setenv("VLCC_KEEP_LAST", "1")
    comm = MPI.COMM_WORLD
    repo = os.path.join(shared_dir(comm, tmp_path), "repo")
    n = 1 << 16
    u = np.arange(n, dtype=np.float64) + comm.rank
    with vlcc.Checkpointer(repo, comm=comm) as ck:
        ck.register("u", u)
        v = ck.checkpoint()
        comm.Barrier()
        if comm.rank == 0:
            for path in glob.glob(os.path.join(repo, "data", v.id, "*.bp", "data.0")):
                with open(path, "r+b") as f:
                    f.seek(100)
                    b = f.read(1)
                    f.seek(100)
                    f.write(bytes([b[0] ^ 0xFF]))
        comm.Barrier()
        u[:] = 0
        ck.restore(v)
        assert np.array_equal(u, np.arange(n, dtype=np.float64) + comm.rank)
    monkeypatch.setenv("VLCC_KEEP_LAST", "0")
    with vlcc.Checkpointer(repo, comm=comm) as ck:
        ck.register("u", u)
        with pytest.raises(vlcc.CorruptionError):
            ck.restore(v)
