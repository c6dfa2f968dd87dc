"""Dedup across versions, ranks and branches (docs/format.md, "Redundancy and
encoding"): only chunks not stored yet reach the data files; every version
restores bit-exact, also N→M."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import vlcc
from vlcc.kernels.dirty import dirty_chunks
from vlcc.redundancy.dirty import ChunkHasher
from mpi_helpers import index, load_module, on_root
from conftest import TESTS_DIR

CHUNK = 4096


def data_bytes(repo: str, vid: str) -> int:
    """Chunk payload bytes a version wrote: the BP5 data.* files of data/<vid>."""
    total = 0
    for root, _dirs, files in os.walk(os.path.join(repo, "data", vid)):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files if f.startswith("data."))
    return total


def dir_bytes(repo: str, vid: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(os.path.join(repo, "data", vid)):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


# -- k % changed, 1/2/3 ranks and N→M (subprocess jobs) ---------------------------------

@pytest.mark.parametrize("n,m", [(1, 1), (2, 2), (3, 3), (2, 3), (3, 1), (1, 2)])
def test_k_percent_changed_stores_only_those_chunks(tmp_path, mpirun, n, m):
    repo = str(tmp_path / "repo")
    k, seed = 10, 7 + n
    out = json.loads(mpirun(n, "dedup_kpct.py", repo, "write", k, seed).stdout.strip().splitlines()[-1])
    kp = load_module(os.path.join(TESTS_DIR, "scripts", "dedup_kpct.py"), "kpct")
    tile_bytes = kp.TILE * 8
    # v1 stores every byte once; v2 exactly the changed tiles (both pieces of a
    # tile cut by a block boundary changed)
    assert data_bytes(repo, out["v1"]) == kp.G * CHUNK
    assert data_bytes(repo, out["v2"]) == out["changed"] * tile_bytes
    assert 0 < out["changed"] < kp.NT
    # whole directory (with indexes and BP5 metadata) stays far below a full version
    assert dir_bytes(repo, out["v2"]) < dir_bytes(repo, out["v1"]) * (k / 100 + 0.1)
    repo_obj = vlcc.Repository(repo)
    assert repo_obj.verify()["versions"] == 2
    # restore on m ranks (N→M), then commit the same content from m ranks:
    # chunks lie on the global tile grid, and a piece that only the new
    # decomposition cuts is a byte range of the old tile (referenced), so
    # only the tiles an old cut split, and the new one joins, are written again
    res = json.loads(mpirun(m, "dedup_kpct.py", repo, "read", k, seed).stdout.strip().splitlines()[-1])
    n_elems = kp.G * kp.PER

    def cuts(p):   # the block boundaries inside the array, in elements
        return {n_elems // p * r for r in range(1, p)}
    recut = {c // kp.TILE for c in cuts(n) - cuts(m) if c % kp.TILE}
    assert data_bytes(repo, res["v3"]) == len(recut) * tile_bytes
    if n == m:
        assert not recut
    g2 = repo_obj.read("tag:v2", "u")
    np.testing.assert_array_equal(repo_obj.read(res["v3"], "u"), g2)
    repo_obj.verify(res["v3"])


# -- in-process MPI tests (any rank count) ----------------------------------------------

@pytest.mark.mpi
def test_replicated_array_stored_once(mpi_tmp, comm):
    same = np.arange(16 * CHUNK // 8, dtype=np.float64)     # identical on every rank
    mine = np.full(CHUNK // 8, comm.rank, dtype=np.float64)  # differs per rank
    with vlcc.Checkpointer(mpi_tmp, comm, chunk_size=CHUNK) as ck:
        ck.register("same", same)
        ck.register("mine", mine)
        v = ck.checkpoint()
    def check():
        assert data_bytes(mpi_tmp, v.id) == same.nbytes + comm.size * mine.nbytes
        for r in range(1, comm.size):
            idx = index(mpi_tmp, v.id, r)
            files = {idx["files"][c[0]] for c in idx["leaves"]["same"]["chunks"]}
            assert files == {f"data/{v.id}/r0.bp"}
        repo = vlcc.Repository(mpi_tmp)
        repo.verify(v.id)
        np.testing.assert_array_equal(repo.read(v, "same"), same)
        for r in range(comm.size):
            np.testing.assert_array_equal(repo.read(v, "mine", rank=r), np.full_like(mine, r))
    on_root(comm, check)


@pytest.mark.mpi
def test_repeated_chunks_within_a_version_stored_once(mpi_tmp, comm):
    z = np.zeros(32 * CHUNK // 8)
    z[-1] = comm.rank + 1.0   # last chunk differs per rank
    with vlcc.Checkpointer(mpi_tmp, comm, chunk_size=CHUNK) as ck:
        ck.register("z", z)
        v = ck.checkpoint()
        z2 = np.ones_like(z)
        ck.unregister("z")
        ck.register("z", z2)
        ck.restore(v)
        np.testing.assert_array_equal(z2, z)
    def check():
        # one zero chunk for everyone + one distinct last chunk per rank
        assert data_bytes(mpi_tmp, v.id) == CHUNK * (1 + comm.size)
    on_root(comm, check)


@pytest.mark.mpi
def test_unchanged_version_writes_no_chunks_and_restarts_dedup(mpi_tmp, comm):
    rng = np.random.default_rng(comm.rank)
    u = rng.random(8 * CHUNK // 8)
    with vlcc.Checkpointer(mpi_tmp, comm, chunk_size=CHUNK) as ck:
        ck.register("u", u)
        v1 = ck.checkpoint()
        v2 = ck.checkpoint()
    # a new Checkpointer (a restarted job) reads the parent's index from disk
    with vlcc.Checkpointer(mpi_tmp, comm, chunk_size=CHUNK) as ck:
        ck.register("u", u)
        u[:CHUNK // 8] += 1
        v3 = ck.checkpoint()
    def check():
        assert data_bytes(mpi_tmp, v1.id) == comm.size * u.nbytes
        assert data_bytes(mpi_tmp, v2.id) == 0
        assert data_bytes(mpi_tmp, v3.id) == comm.size * CHUNK
        repo = vlcc.Repository(mpi_tmp)
        assert repo.verify()["versions"] == 3
    on_root(comm, check)
    repo = vlcc.Repository(mpi_tmp)
    np.testing.assert_array_equal(repo.read(v3, "u", rank=comm.rank), u)
    comm.Barrier()


@pytest.mark.mpi
def test_two_branches_share_their_common_chunks(mpi_tmp, comm):
    u = np.random.default_rng(comm.rank).random(16 * CHUNK // 8)
    with vlcc.Checkpointer(mpi_tmp, comm, chunk_size=CHUNK) as ck:
        ck.register("u", u)
        base = ck.checkpoint(message="base")
        ck.branch("other", at=base)
        u[:CHUNK // 8] = -1.0 - comm.rank   # main changes chunk 0 (differs per rank)
        m1 = ck.checkpoint()
        main_u = u.copy()
        ck.switch("other")
        ck.restore()                   # back to base
        u[-CHUNK // 8:] = -2.0 - comm.rank  # other changes the last chunk
        o1 = ck.checkpoint()
        other_u = u.copy()
        ck.switch("main")
        ck.restore()
        np.testing.assert_array_equal(u, main_u)
        ck.switch("other")
        ck.restore()
        np.testing.assert_array_equal(u, other_u)
    def check():
        assert data_bytes(mpi_tmp, m1.id) == comm.size * CHUNK
        assert data_bytes(mpi_tmp, o1.id) == comm.size * CHUNK
        vlcc.Repository(mpi_tmp).verify()
    on_root(comm, check)


@pytest.mark.mpi
def test_dedup_off_writes_everything(mpi_tmp, comm):
    u = np.ones(4 * CHUNK // 8)
    with vlcc.Checkpointer(mpi_tmp, comm, chunk_size=CHUNK, dedup=False) as ck:
        ck.register("u", u)
        ck.checkpoint()
        v = ck.checkpoint()
    def check():
        assert data_bytes(mpi_tmp, v.id) == comm.size * u.nbytes
    on_root(comm, check)


@pytest.mark.mpi
def test_corrupt_shared_chunk_is_reported_in_the_child(mpi_tmp, comm):
    u = np.random.default_rng(3).random(4 * CHUNK // 8)
    with vlcc.Checkpointer(mpi_tmp, comm, chunk_size=CHUNK) as ck:
        ck.register("u", u)
        v1 = ck.checkpoint()
        v2 = ck.checkpoint()
    comm.Barrier()
    def check():
        path = os.path.join(mpi_tmp, "data", v1.id, "r0.bp", "data.0")
        with open(path, "r+b") as f:
            f.seek(10)
            b = f.read(1)
            f.seek(10)
            f.write(bytes([b[0] ^ 0xFF]))
        with pytest.raises(vlcc.CorruptionError, match=v1.id):
            vlcc.Repository(mpi_tmp).verify(v2.id)
    on_root(comm, check)


@pytest.mark.mpi
@pytest.mark.parametrize("track", [False, True])
def test_dirty_tracking_gives_the_same_index(mpi_tmp, comm, track):
    rng = np.random.default_rng(11 + comm.rank)
    u = rng.random(20 * CHUNK // 8 + 3)   # ragged last chunk
    ids = []
    with vlcc.Checkpointer(mpi_tmp, comm, chunk_size=CHUNK, track_dirty=track) as ck:
        ck.register("u", u)
        for step in range(4):
            u[rng.integers(0, u.size, 3)] += 1.0
            ids.append(ck.checkpoint(step=step).id)
    repo = vlcc.Repository(mpi_tmp)
    for vid in ids:
        hashes = [c[5] for c in index(mpi_tmp, vid, comm.rank)["leaves"]["u"]["chunks"]]
        ref = ChunkHasher(track=False).hashes("u", repo.read(vid, "u", rank=comm.rank).view(np.uint8), CHUNK)
        assert hashes == ref
    comm.Barrier()


# -- the kernel against numpy ---------------------------------------------------------

@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 4096, 100_003])
@pytest.mark.parametrize("cs", [1, 5, 8, 64, 4096])
def test_dirty_kernel_matches_numpy(n, cs):
    rng = np.random.default_rng(n * 31 + cs)
    prev = rng.integers(0, 256, n, dtype=np.uint8)
    cur = prev.copy()
    for i in rng.integers(0, max(n, 1), 4) if n else []:
        cur[i] ^= 0x10
    ref = np.array([not np.array_equal(cur[s:s + cs], prev[s:s + cs]) for s in range(0, n, cs)],
                   dtype=bool)
    keep = prev.copy()
    mask = dirty_chunks(cur, keep, cs)
    np.testing.assert_array_equal(mask, ref)
    np.testing.assert_array_equal(keep, cur)     # the copy was refreshed
    np.testing.assert_array_equal(dirty_chunks(cur, prev, cs, update=False), ref)
