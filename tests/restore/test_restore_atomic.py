"""All-or-nothing restore (issue 10, point 6) and the fused chunk checksum of the
byte-level reader (issue 19): a restore that fails on any rank — a provider's
shape, a damaged chunk or value, a read-only target — leaves every provider's
memory on every rank untouched; a flipped byte anywhere in a chunk is caught
and named. MPI tests pass at any rank count (the last rank is the victim)."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest
from mpi4py import MPI

import vlcc
from damage import flip, locate

CHUNK = 256


def damage(comm, repo: str, vid: str, victim: int, payload: bytes, k: int) -> None:
    """Flip byte ``k`` of ``payload`` as stored by rank ``victim`` (done by rank 0)."""
    payloads = comm.gather(payload, root=0)
    if comm.rank == 0:
        path, at = locate(os.path.join(repo, "data", vid), victim, payloads[victim])
        flip(path, at + k)
    comm.Barrier()


def write(comm, repo: str, rank_data: dict):
    """One version of per-rank arrays (and ValueProviders), on every rank."""
    with vlcc.Checkpointer(repo, comm=comm, chunk_size=CHUNK) as ck:
        for name, obj in rank_data.items():
            ck.register(name, obj)
        return ck.checkpoint()


def untouched(*arrays) -> bool:
    return all(np.all(a == -1) for a in arrays)


@pytest.mark.mpi
@pytest.mark.parametrize("atomic", [None, True])
def test_shape_mismatch_on_one_rank_touches_nothing(comm, mpi_tmp, atomic):
    """The second provider's shape no longer fits on the last rank: every rank
    raises and no provider (the first one included) is written anywhere."""
    rank, victim = comm.rank, comm.size - 1
    repo = os.path.join(mpi_tmp, "repo")
    v = write(comm, repo, {"a": np.arange(300.0) + rank, "b": np.arange(200.0) + rank})
    a, b = np.full(300, -1.0), np.full(210 if rank == victim else 200, -1.0)
    with vlcc.Checkpointer(repo, comm=comm) as ck:
        ck.register("a", a)
        ck.register("b", b)
        with pytest.raises(vlcc.ShapeMismatchError, match="'b'"):
            ck.restore(v, atomic=atomic)
        assert untouched(a, b)
        if rank == victim:
            b = np.full(200, -1.0)
            ck.unregister("b")
            ck.register("b", b)
        ck.restore(v, atomic=atomic)          # the same version, now fitting: bit-exact
    assert np.array_equal(a, np.arange(300.0) + rank) and np.array_equal(b, np.arange(200.0) + rank)


@pytest.mark.mpi
@pytest.mark.parametrize("atomic", [None, True, False])
def test_damaged_chunk_of_second_provider(comm, mpi_tmp, atomic):
    """A flipped data byte in the second provider's chunk on the last rank:
    CorruptionError everywhere naming version, provider, rank and file; staged
    restores leave every provider untouched (atomic=False may not)."""
    rank, victim = comm.rank, comm.size - 1
    repo = os.path.join(mpi_tmp, "repo")
    rng = np.random.default_rng([rank, 3])
    a0, u0 = rng.standard_normal(300), rng.standard_normal(320)   # 1-D: stored in C order
    with vlcc.Checkpointer(repo, comm=comm, chunk_size=CHUNK) as ck:
        ck.register("a", a0)
        ck.register("u", u0, global_shape=(320 * comm.size,), offset=(320 * rank,))
        v = ck.checkpoint()
    damage(comm, repo, v.id, victim, u0.tobytes(), 1000)
    a, u = np.full(300, -1.0), np.full(320, -1.0)
    with vlcc.Checkpointer(repo, comm=comm) as ck:
        ck.register("a", a)
        ck.register("u", u, global_shape=(320 * comm.size,), offset=(320 * rank,))
        with pytest.raises(vlcc.CorruptionError) as ei:
            ck.restore(v, atomic=atomic)
    for w in (v.id, "provider 'u'", f"rank {victim}", f"r{victim}.bp", "checksum mismatch in chunk"):
        assert w in str(ei.value), (w, str(ei.value))
    if atomic is not False:
        assert untouched(a, u)


@pytest.mark.mpi
def test_damaged_value_applies_nothing(comm, mpi_tmp):
    """A value provider's stored value is damaged on the last rank (its set
    callback is fine): nothing is applied on any rank, set is never called."""
    rank, victim = comm.rank, comm.size - 1
    repo = os.path.join(mpi_tmp, "repo")
    value = {"rank": rank, "note": "vlcc-stored-value-" * 8}
    v = write(comm, repo, {"a": np.arange(100.0), "t": vlcc.ValueProvider(get=lambda: value),
                           "c": np.arange(50.0)})
    damage(comm, repo, v.id, victim, value["note"].encode(), 20)   # inside the pickle
    calls = []
    a, c = np.full(100, -1.0), np.full(50, -1.0)
    with vlcc.Checkpointer(repo, comm=comm) as ck:
        ck.register("a", a)
        ck.register("t", vlcc.ValueProvider(get=lambda: None, set=calls.append))
        ck.register("c", c)
        with pytest.raises(vlcc.CorruptionError, match=v.id):
            ck.restore(v)
    assert calls == [] and untouched(a, c)


@pytest.mark.mpi
@pytest.mark.parametrize("when", ["before", "after"])
def test_read_only_target(comm, mpi_tmp, when):
    """A read-only array (made so before or after registering) on the last rank:
    a VlccError naming provider, version and rank on every rank; nothing written."""
    rank, victim = comm.rank, comm.size - 1
    repo = os.path.join(mpi_tmp, "repo")
    v = write(comm, repo, {"a": np.arange(100.0), "b": np.arange(60.0)})
    a, b = np.full(100, -1.0), np.full(60, -1.0)
    if rank == victim and when == "before":
        b.flags.writeable = False
    with vlcc.Checkpointer(repo, comm=comm) as ck:
        ck.register("a", a)
        ck.register("b", b)
        if rank == victim and when == "after":
            b.flags.writeable = False
        with pytest.raises(vlcc.ProviderError) as ei:
            ck.restore(v)
    for w in ("provider 'b'", "read-only", v.id, f"rank {victim}"):
        assert w in str(ei.value), (w, str(ei.value))
    assert untouched(a, b)


@pytest.fixture(params=[True, False], ids=["pool", "inline"])
def hashing(request, monkeypatch):
    """Run with the byte-level reader hashing in its thread pool, or inline."""
    from vlcc.restore import fetch
    monkeypatch.setattr(fetch, "HASH_IN_THREAD", request.param)
    monkeypatch.setattr(fetch, "GROUP_BYTES", 2048)      # several groups even for small arrays
    return request.param


@pytest.mark.parametrize("where", ["middle", "last"])
@pytest.mark.parametrize("atomic", [True, False])
def test_fused_checksum_catches_every_position(tmp_path, where, atomic, hashing):
    """A byte flipped in the middle or at the last byte of a chunk (chunks read
    as one group by the byte-level reader, hashed per chunk): CorruptionError
    naming version, provider, rank, file and the chunk; undamaged, bit-exact."""
    chunk = 4096
    rng = np.random.default_rng(11)
    u0 = rng.standard_normal(4 * chunk // 8)          # 4 chunks, read as one group
    repo = str(tmp_path / "repo")
    with vlcc.Checkpointer(repo, comm=MPI.COMM_SELF, chunk_size=chunk) as ck:
        ck.register("u", u0, global_shape=u0.shape, offset=(0,))
        v = ck.checkpoint()
    path, at = locate(os.path.join(repo, "data", v.id), 0, u0.tobytes())
    u = np.zeros_like(u0)
    with vlcc.Checkpointer(repo, comm=MPI.COMM_SELF) as ck:
        ck.register("u", u, global_shape=u0.shape, offset=(0,))
        for c in (1, 3):
            k = c * chunk + (chunk // 2 if where == "middle" else chunk - 1)
            flip(path, at + k)
            with pytest.raises(vlcc.CorruptionError) as ei:
                ck.restore(v, atomic=atomic)
            for w in (v.id, "provider 'u'", "rank 0", path.rsplit("/", 1)[0], f"chunk {c} "):
                assert w in str(ei.value), (w, str(ei.value))
            flip(path, at + k)
        ck.restore(v, atomic=atomic)
    assert u.tobytes() == u0.tobytes()


def test_memory_tier_restore_is_all_or_nothing(tmp_path):
    """A pending version restored from the memory tier (async mode) also stages
    first: a read-only second target leaves the first untouched."""
    a, b = np.arange(100.0), np.arange(60.0)
    with vlcc.Checkpointer(str(tmp_path / "repo"), comm=MPI.COMM_SELF, mode="async",
                           local_dir="none") as ck:
        ck.register("a", a)
        ck.register("b", b)
        v = ck.checkpoint()
        a[:], b[:] = -1.0, -1.0
        b.flags.writeable = False
        with pytest.raises(vlcc.ProviderError, match=r"read-only.*\(memory tier\)"):
            ck.restore(v)
        assert untouched(a, b)
        b.flags.writeable = True
        ck.restore(v)
    assert np.array_equal(a, np.arange(100.0)) and np.array_equal(b, np.arange(60.0))


def test_atomic_none_falls_back_to_direct_when_memory_is_short(tmp_path, monkeypatch):
    """atomic=None stages unless staging exceeds half the available memory: then
    it reads straight into the arrays and says so (RuntimeWarning)."""
    from vlcc.restore import staging
    u0 = np.arange(4096.0)
    repo = str(tmp_path / "repo")
    with vlcc.Checkpointer(repo, comm=MPI.COMM_SELF) as ck:
        ck.register("u", u0, global_shape=u0.shape, offset=(0,))
        v = ck.checkpoint()
    u = np.zeros_like(u0)
    with vlcc.Checkpointer(repo, comm=MPI.COMM_SELF) as ck:
        ck.register("u", u, global_shape=u0.shape, offset=(0,))
        with monkeypatch.context() as m:
            m.setattr(staging, "available_memory", lambda: u0.nbytes)
            with pytest.warns(RuntimeWarning, match="atomic=False"):
                ck.restore(v)
            assert np.array_equal(u, u0)
            u[:] = 0
            ck.restore(v, atomic=True)                    # forced staging: no warning
            assert np.array_equal(u, u0)
        u[:] = 0
        ck.restore(v)                                     # plenty of memory: staged, silent
    assert np.array_equal(u, u0)


@pytest.mark.parametrize("atomic", [True, False])
def test_streamed_tiled_pieces(tmp_path, atomic, hashing):
    """A 2-D array stored on the tile grid is scattered through scratch buffers
    (whole block and a sub-box, N→M style): bit-exact; a flipped stored byte is
    caught and named."""
    rng = np.random.default_rng(5)
    g = rng.standard_normal((40, 24))
    repo = str(tmp_path / "repo")
    with vlcc.Checkpointer(repo, comm=MPI.COMM_SELF, chunk_size=1024) as ck:
        ck.register("g", g, global_shape=g.shape, offset=(0, 0))
        v = ck.checkpoint()
    for off, shape in (((0, 0), g.shape), ((7, 5), (20, 13))):
        out = np.zeros(shape)
        with vlcc.Checkpointer(repo, comm=MPI.COMM_SELF) as ck:
            ck.register("g", out, global_shape=g.shape, offset=off)
            ck.restore(v, atomic=atomic)
        assert out.tobytes() == g[off[0]:off[0] + shape[0], off[1]:off[1] + shape[1]].tobytes()
    (data,) = glob.glob(os.path.join(repo, "data", v.id, "r0.bp", "data.*"))
    flip(data, os.path.getsize(data) // 2)
    out = np.full(g.shape, -1.0)
    with vlcc.Checkpointer(repo, comm=MPI.COMM_SELF) as ck:
        ck.register("g", out, global_shape=g.shape, offset=(0, 0))
        with pytest.raises(vlcc.CorruptionError) as ei:
            ck.restore(v, atomic=atomic)
    for w in (v.id, "provider 'g'", "rank 0", "r0.bp", "checksum mismatch in chunk"):
        assert w in str(ei.value), (w, str(ei.value))
    if atomic:
        assert np.all(out == -1.0)
