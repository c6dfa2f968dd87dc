"""In-process node-local redundancy at any rank count (pytest-mpi): one
simulated node per rank; expectations from comm.size. The newest version is
on node-local tiers only; the last node's directory is removed between two
Checkpointers; the restore rebuilds it (2+ nodes) or names the version and
the missing node (1 node, nothing to rebuild from); with persist="always" the
persistent copy is used whatever is lost."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

import vlcc
from vlcc.errors import StorageError

N = 20_000


@pytest.fixture
def one_node_per_rank():
    from mpi4py import MPI
    old = os.environ.get("VLCC_NODE_ID")
    os.environ["VLCC_NODE_ID"] = str(MPI.COMM_WORLD.rank)
    yield MPI.COMM_WORLD
    if old is None:
        os.environ.pop("VLCC_NODE_ID", None)
    else:
        os.environ["VLCC_NODE_ID"] = old


def _open(comm, repo, local, red, persist, u):
    ck = vlcc.Checkpointer(repo, comm, mode="async", local_dir=local, redundancy=red,
                           persist=persist)
    ck.register("u", u, global_shape=(N * comm.size,), offset=(N * comm.rank,))
    return ck


def _lose_last_node(comm, local, nodes=1):
    comm.Barrier()
    if comm.rank == 0:
        for n in range(comm.size - nodes, comm.size):
            shutil.rmtree(os.path.join(local, f"node-{n}"), ignore_errors=True)
    comm.Barrier()


@pytest.mark.mpi
@pytest.mark.parametrize("persist", ["never", "always", 3600])   # 3600 s: not yet persisted
def test_lost_node_rebuilt_or_named(mpi_tmp, one_node_per_rank, persist):
    comm = one_node_per_rank
    repo, local = os.path.join(mpi_tmp, "repo"), os.path.join(mpi_tmp, "local")
    red = "partner" if comm.size >= 2 else "none"
    u = np.arange(N, dtype=np.float64) + comm.rank * N
    with _open(comm, repo, local, red, persist, u) as ck:
        for s in range(3):
            u += 1
            v = ck.checkpoint(step=s)
        ck.wait()
    want = np.arange(N, dtype=np.float64) + comm.rank * N + 3
    _lose_last_node(comm, local)
    got = np.zeros(N)
    with _open(comm, repo, local, red, persist, got) as ck:
        if comm.size == 1 and persist != "always":
            with pytest.raises(StorageError, match=f"version {v.id}.*node"):
                ck.restore()
            return
        r = ck.restore()
    assert r.id == v.id and np.array_equal(got, want)
    notes = vlcc.Repository(repo).verify(v.id).get("node_local", {})
    if persist != "always":
        assert f"node(s) {comm.size - 1} were rebuilt" in notes[v.id]
    else:
        assert not notes       # the persistent copy was read: nothing to rebuild


@pytest.mark.mpi(min_size=2)
def test_too_many_lost_names_version_and_nodes(mpi_tmp, one_node_per_rank):
    comm = one_node_per_rank
    repo, local = os.path.join(mpi_tmp, "repo"), os.path.join(mpi_tmp, "local")
    u = np.ones(N)
    with _open(comm, repo, local, "xor", "never", u) as ck:
        v = ck.checkpoint(step=1)
        ck.wait()
    _lose_last_node(comm, local, nodes=2)
    with _open(comm, repo, local, "xor", "never", np.zeros(N)) as ck:
        lost = ", ".join(str(n) for n in range(comm.size - 2, comm.size))
        with pytest.raises(StorageError, match=f"version {v.id}.*missing nodes: {lost}"):
            ck.restore()


@pytest.mark.mpi(min_size=2)
def test_damaged_share_is_named_not_used(mpi_tmp, one_node_per_rank):
    comm = one_node_per_rank
    repo, local = os.path.join(mpi_tmp, "repo"), os.path.join(mpi_tmp, "local")
    with _open(comm, repo, local, "partner", "never", np.ones(N)) as ck:
        v = ck.checkpoint(step=1)
        ck.wait()
    comm.Barrier()
    if comm.rank == 0:        # the copy of the last node's files, kept by node 0: one byte flipped
        import glob
        (share,) = glob.glob(os.path.join(local, "node-0", "vlcc-store-*", "redundancy", v.id,
                                          f"parity-{comm.size - 1}-0-*.bin"))
        with open(share, "r+b") as f:
            b = f.read(1)
            f.seek(0)
            f.write(bytes([b[0] ^ 0xFF]))
    _lose_last_node(comm, local)
    with _open(comm, repo, local, "partner", "never", np.zeros(N)) as ck:
        with pytest.raises(vlcc.CorruptionError, match=f"version {v.id}.*parity-{comm.size - 1}-0"):
            ck.restore()
    assert not os.path.exists(os.path.join(repo, "data", v.id, "rebuilt.json"))
