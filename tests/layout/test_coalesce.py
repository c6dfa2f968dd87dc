"""Coalescing of small leaves into one per-rank pack (docs/format.md, 3.1):
one BP5 variable and a few chunks for thousands of tiny providers; every
provider still restores bit-exact (also N→M), reads, verifies and dedups."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import vlcc
from vlcc.layout.coalesce import PACK_NAME
from mpi_helpers import on_root, index

CHUNK = 4096


def small_state(rank: int, count: int = 300):
    rng = np.random.default_rng(100 + rank)
    return [rng.random(rng.integers(1, 40)) for _ in range(count)]


@pytest.mark.mpi
def test_small_providers_share_one_pack_and_restore(mpi_tmp, comm):
    arrays = small_state(comm.rank)
    big = np.arange(20_000, dtype=np.float64) + comm.rank            # 160 kB: stored on its own
    dist = np.full((3, 5), comm.rank, dtype=np.int16)                 # small distributed block
    value = {"rank": comm.rank}
    truth = [a.copy() for a in arrays]
    with vlcc.Checkpointer(mpi_tmp, comm, chunk_size=CHUNK, coalesce_below=1024) as ck:
        for i, a in enumerate(arrays):
            ck.register(f"p/{i}", a)
        ck.register("big", big)
        ck.register("d", dist, global_shape=(3 * comm.size, 5), offset=(3 * comm.rank, 0))
        ck.register("val", vlcc.ValueProvider(get=lambda: value, set=value.update))
        v = ck.checkpoint()
        for a in arrays:
            a[...] = -1
        big[...] = -1
        dist[...] = -1
        value.clear()
        ck.restore(v)
        assert all(np.array_equal(a, t) for a, t in zip(arrays, truth))
        assert np.array_equal(big, np.arange(20_000) + comm.rank)
        assert (dist == comm.rank).all() and value == {"rank": comm.rank}

    def check():
        repo = vlcc.Repository(mpi_tmp)
        for r in range(comm.size):
            idx = index(mpi_tmp, v.id, r)
            # the pack and the big array are the only leaves with chunks
            assert {n for n, e in idx["leaves"].items() if e["chunks"]} == {PACK_NAME, "big"}
            pack = idx["leaves"][PACK_NAME]
            small_bytes = sum(len(a) * 8 for a in small_state(r)) + dist.nbytes
            assert pack["nbytes"] > small_bytes                  # + the pickled value
            assert len(pack["chunks"]) == -(-pack["nbytes"] // CHUNK)
            assert {c[1] for c in pack["chunks"]} == {PACK_NAME}  # one BP5 variable
            assert idx["stats"]["packed_leaves"] == len(arrays) + 2
        blocks = repo.blocks(v, "p/0")
        assert all(b["pack"]["leaf"] == PACK_NAME for b in blocks)
        # packs are laid out back to back, in registration order
        offs = [repo.blocks(v, f"p/{i}")[0]["pack"]["offset"] for i in range(len(arrays))]
        assert offs == sorted(offs) and offs[0] == 0
        assert "pack" not in repo.blocks(v, "big")[0]
        for r in range(comm.size):
            for i, a in enumerate(small_state(r)[:20]):
                np.testing.assert_array_equal(repo.read(v, f"p/{i}", rank=r), a)
            assert repo.read(v, "val", rank=r) == {"rank": r}
        np.testing.assert_array_equal(
            repo.read(v, "d"), np.repeat(np.arange(comm.size, dtype=np.int16), 3)[:, None] * np.ones(5, np.int16))
        res = repo.verify(deep=True)
        assert res["versions"] == 1
    on_root(comm, check)


@pytest.mark.mpi
def test_pack_dedups_and_digests_do_not_depend_on_coalescing(mpi_tmp, comm):
    arrays = [np.full(32, i + 1000 * comm.rank, dtype=np.float64) for i in range(100)]   # 256 B each
    with vlcc.Checkpointer(mpi_tmp, comm, chunk_size=CHUNK) as ck:
        for i, a in enumerate(arrays):
            ck.register(f"a/{i}", a)
        v1 = ck.checkpoint()
        v2 = ck.checkpoint()              # unchanged: nothing new
        arrays[50][0] += 1                # one array: one chunk of the pack
        v3 = ck.checkpoint()
    with vlcc.Checkpointer(mpi_tmp, comm, chunk_size=CHUNK, coalesce_below=0) as ck:
        for i, a in enumerate(arrays):
            ck.register(f"a/{i}", a)
        v4 = ck.checkpoint()              # same content, not coalesced

    def check():
        for r in range(comm.size):
            s1, s2, s3 = (index(mpi_tmp, v.id, r)["stats"] for v in (v1, v2, v3))
            assert s1["written_chunks"] == -(-100 * 256 // CHUNK)
            assert s2["written_chunks"] == 0
            assert s3["written_chunks"] == 1
            i4 = index(mpi_tmp, v4.id, r)
            assert PACK_NAME not in i4["leaves"] and len(i4["leaves"]) == 100
        repo = vlcc.Repository(mpi_tmp)
        for name in v3.providers:
            d3 = [b["digest"] for b in repo.blocks(v3, name)]
            d4 = [b["digest"] for b in repo.blocks(v4, name)]
            assert d3 == d4, name
            assert all("pack" not in b for b in repo.blocks(v4, name))
        repo = vlcc.Repository(mpi_tmp)
        for r in range(comm.size):
            np.testing.assert_array_equal(repo.read(v3, "a/50", rank=r), repo.read(v4, "a/50", rank=r))
            assert repo.read(v1, "a/50", rank=r)[0] == 50 + 1000 * r
        assert repo.verify(deep=True)["versions"] == 4
    on_root(comm, check)


@pytest.mark.mpi
def test_compressed_small_leaves_stay_apart(mpi_tmp, comm):
    a = np.zeros(100)
    b = np.ones(100)
    c = np.arange(100.0)
    with vlcc.Checkpointer(mpi_tmp, comm, chunk_size=CHUNK) as ck:
        ck.register("a", a, compress="zstd")
        ck.register("b", b)
        ck.register("c", c)
        v = ck.checkpoint()
        a[:] = 5
        ck.restore(v)
        assert (a == 0).all()

    def check():
        idx = index(mpi_tmp, v.id, 0)
        assert {n for n, e in idx["leaves"].items() if e["chunks"]} == {"a", PACK_NAME}
        assert idx["codecs"][idx["leaves"]["a"]["chunks"][0][6]]["id"] == "zstd"
    on_root(comm, check)


def test_corrupted_pack_byte_is_reported_with_the_provider(tmp_path):
    repo = str(tmp_path / "r")
    arrays = [np.full(64, i, dtype=np.uint8) for i in range(10)]
    with vlcc.Checkpointer(repo, chunk_size=CHUNK) as ck:
        for i, a in enumerate(arrays):
            ck.register(f"x/{i}", a)
        v = ck.checkpoint()
    # flip one byte of the pack's payload (stored raw: find its value 3 run)
    bp = os.path.join(repo, "data", v.id, "r0.bp")
    data = [f for f in os.listdir(bp) if f.startswith("data.")][0]
    path = os.path.join(bp, data)
    raw = bytearray(open(path, "rb").read())
    pos = raw.find(bytes([3]) * 64)
    assert pos >= 0
    raw[pos + 5] ^= 0xFF
    open(path, "wb").write(bytes(raw))
    r = vlcc.Repository(repo)
    with pytest.raises(vlcc.CorruptionError, match="checksum mismatch"):
        r.verify()
    with pytest.raises(vlcc.CorruptionError, match="x/3"):
        r.read(v, "x/3")
    with vlcc.Checkpointer(repo, chunk_size=CHUNK) as ck:
        for i, a in enumerate(arrays):
            ck.register(f"x/{i}", a)
        with pytest.raises(vlcc.CorruptionError):
            ck.restore(v)


def test_negative_threshold_is_refused(tmp_path):
    with pytest.raises(vlcc.VlccError, match="coalesce_below"):
        vlcc.Checkpointer(str(tmp_path / "r"), coalesce_below=-1)


@pytest.mark.parametrize("n,m", [(1, 2), (2, 3), (3, 2), (3, 1)])
def test_coalesced_small_distributed_blocks_n_to_m(tmp_path, mpirun, n, m):
    repo = str(tmp_path / "repo")
    w = json.loads(mpirun(n, "coalesce_nm.py", repo, "write").stdout.strip().splitlines()[-1])
    v = vlcc.Repository(repo).resolve(w["version"])
    assert all("pack" in b for b in vlcc.Repository(repo).blocks(v, "small"))
    assert all("pack" not in b for b in vlcc.Repository(repo).blocks(v, "big"))
    r = json.loads(mpirun(m, "coalesce_nm.py", repo, "read").stdout.strip().splitlines()[-1])
    assert r == {"ok": True, "version": w["version"]}
    small = vlcc.Repository(repo).read(v, "small")
    assert small.shape == (23, 7) and small[22, 6] == (23 * 7 - 1) * 1.5
    vlcc.Repository(repo).verify(deep=True)
