"""Integrity: a flipped byte in stored data, a rank index or a manifest is
detected by Repository.verify() and by restore, reported with version,
provider, rank and file; other versions are unaffected. Never wrong data."""

from __future__ import annotations

import glob
import os
import re

import numpy as np
import pytest
from mpi4py import MPI

import vlcc
from damage import flip, locate
from vlcc.layout.tiles import gather, piece_bounds, pieces, tile_shape

SELF = MPI.COMM_SELF
CHUNK = 256


class Setup:
    """One rank, two versions; v2 holds a per-rank array ``blob`` and a
    distributed array ``grid/u`` (with halo) of fresh random bytes."""

    def __init__(self, path, seed):
        self.path, self.seed = str(path), seed
        rng = np.random.default_rng(seed)
        self.blob = rng.integers(0, 256, 3000, dtype=np.uint8)
        self.u = np.zeros((12 + 2, 10 + 2))
        self.u[1:-1, 1:-1] = rng.standard_normal((12, 10))
        self.ck = vlcc.Checkpointer(self.path, comm=SELF, chunk_size=CHUNK)
        self.ck.register("blob", self.blob)
        self.ck.register("grid/u", self.u, global_shape=(12, 10), offset=(0, 0), halo=1)
        self.v1 = self.ck.checkpoint(step=1)
        self.saved1 = (self.blob.copy(), self.u.copy())
        self.blob[:] = rng.integers(0, 256, self.blob.size, dtype=np.uint8)
        self.u[1:-1, 1:-1] = rng.standard_normal((12, 10))
        self.v2 = self.ck.checkpoint(step=2)
        self.saved2 = (self.blob.copy(), self.u.copy())

    def vdir(self, v):
        return os.path.join(self.path, "data", v.id)

    def restore_ok(self, v, saved):
        self.blob[:] = 0
        self.u[...] = 0
        assert self.ck.restore(v.id).id == v.id
        assert self.blob.tobytes() == saved[0].tobytes()
        assert self.u.tobytes() == saved[1].tobytes()


@pytest.fixture
def setup(tmp_path, request):
    s = Setup(tmp_path / "repo", seed=getattr(request, "param", 0))
    yield s
    s.ck.close()


@pytest.mark.parametrize("setup", [0, 1, 2, 3, 4, 5], indirect=True)
def test_flipped_data_byte(setup):
    s = setup
    rng = np.random.default_rng(1000 + s.seed)
    # Pick a random byte of the stored payload of a random provider: the
    # distributed grid/u is stored as its pieces on the global tile grid
    # (docs/format.md, 3.3), one chunk per piece.
    ps = pieces((0, 0), (12, 10), tile_shape((12, 10), 8, CHUNK))
    bounds = piece_bounds(ps, 8)
    u_bytes = np.ascontiguousarray(s.saved2[1][1:-1, 1:-1]).reshape(-1).view(np.uint8)
    name, payload = [("blob", s.saved2[0].tobytes()),
                     ("grid/u", gather(u_bytes, (0, 0), (12, 10), ps, 8).tobytes())][rng.integers(2)]
    path, at = locate(s.vdir(s.v2), 0, payload)
    k = int(rng.integers(len(payload)))
    flip(path, at + k)
    chunk = k // CHUNK if name == "blob" else next(i for i, (b0, n) in enumerate(bounds)
                                                     if b0 <= k < b0 + n)
    where = [s.v2.id, f"provider '{name}'", "rank 0", os.path.dirname(path), f"chunk {chunk}"]

    repo = vlcc.Repository(s.path)
    with pytest.raises(vlcc.CorruptionError) as ei:
        repo.verify(s.v2)
    for w in where:
        assert w in str(ei.value), (w, str(ei.value))
    with pytest.raises(vlcc.CorruptionError, match=re.escape(s.v2.id)):
        repo.verify()                     # all versions
    with pytest.raises(vlcc.CorruptionError, match=re.escape(f"provider '{name}'")):
        repo.read(s.v2, name, **({"rank": 0} if name == "blob" else {}))
    with pytest.raises(vlcc.CorruptionError) as ei:
        s.ck.restore(s.v2.id)
    for w in where:
        assert w in str(ei.value), (w, str(ei.value))

    # The other version is intact and restores bit-exact.
    assert repo.verify(s.v1)["versions"] == 1
    s.restore_ok(s.v1, s.saved1)


def test_every_chunk_is_checked(tmp_path):
    """Flip one byte in each chunk of a block in turn: each one is caught and
    reported as that chunk (no chunk escapes the checksum)."""
    s = Setup(tmp_path / "repo", seed=9)
    try:
        payload = s.saved2[0].tobytes()
        path, at = locate(s.vdir(s.v2), 0, payload)
        nchunks = -(-len(payload) // CHUNK)
        for c in range(nchunks):
            pos = c * CHUNK + (c * 37) % min(CHUNK, len(payload) - c * CHUNK)
            flip(path, at + pos)
            with pytest.raises(vlcc.CorruptionError, match=f"chunk {c} "):
                vlcc.Repository(s.path).verify(s.v2)
            flip(path, at + pos)        # undo
        assert vlcc.Repository(s.path).verify(s.v2)["chunks"] >= nchunks
        s.restore_ok(s.v2, s.saved2)
    finally:
        s.ck.close()


@pytest.mark.parametrize("seed", range(6))
def test_flipped_index_byte(setup, seed):
    s = setup
    idx = os.path.join(s.vdir(s.v2), "r0.idx.json")
    flip(idx, int(np.random.default_rng(seed).integers(os.path.getsize(idx))))
    match = re.escape(f"version {s.v2.id}, rank 0, index file {idx}")
    with pytest.raises(vlcc.CorruptionError, match=match):
        vlcc.Repository(s.path).verify(s.v2)
    with pytest.raises(vlcc.CorruptionError, match=match):
        s.ck.restore(s.v2.id)
    s.restore_ok(s.v1, s.saved1)


@pytest.mark.filterwarnings("ignore:skipping version")
@pytest.mark.parametrize("seed", range(6))
def test_flipped_manifest_byte(setup, seed):
    s = setup
    man = os.path.join(s.path, "versions", f"{s.v2.id}.json")
    flip(man, int(np.random.default_rng(seed).integers(os.path.getsize(man))))
    with pytest.raises(vlcc.CorruptionError, match=re.escape(f"manifest of version {s.v2.id} ({man})")):
        vlcc.Repository(s.path).resolve(s.v2.id)
    with pytest.raises(vlcc.CorruptionError, match=re.escape(s.v2.id)):
        vlcc.Repository(s.path).verify()
    with pytest.raises(vlcc.CorruptionError, match=re.escape(s.v2.id)):
        s.ck.restore()                    # the branch head is the damaged version
    s.restore_ok(s.v1, s.saved1)


@pytest.mark.parametrize("damage", ["truncate", "empty", "remove-dir", "remove-index"])
def test_truncated_or_missing_files(setup, damage):
    s = setup
    vdir = s.vdir(s.v2)
    if damage == "truncate":
        for p in glob.glob(os.path.join(vdir, "r0.bp", "data.*")):
            os.truncate(p, os.path.getsize(p) // 2)
        match = re.escape(f"version {s.v2.id}, provider '")
    elif damage == "empty":
        for p in glob.glob(os.path.join(vdir, "r0.bp", "data.*")):
            os.truncate(p, 0)
        match = re.escape(f"version {s.v2.id}, provider '")
    elif damage == "remove-dir":
        import shutil
        shutil.rmtree(os.path.join(vdir, "r0.bp"))
        match = re.escape(f"version {s.v2.id}, provider '") + ".*is missing"
    else:
        os.unlink(os.path.join(vdir, "r0.idx.json"))
        match = re.escape(f"version {s.v2.id}, rank 0, index file ") + ".*missing"
    with pytest.raises(vlcc.CorruptionError, match=match):
        vlcc.Repository(s.path).verify(s.v2)
    with pytest.raises(vlcc.CorruptionError, match=match):
        s.ck.restore(s.v2.id)
    s.restore_ok(s.v1, s.saved1)


@pytest.mark.mpi
def test_corruption_on_one_rank_fails_restore_everywhere(comm, mpi_tmp):
    """The last rank's stored block is damaged: restore raises CorruptionError on
    every rank (naming the damaged rank), verify names it too; v1 still restores."""
    rank, size = comm.rank, comm.size
    victim = size - 1
    path = os.path.join(mpi_tmp, "repo")
    rng = np.random.default_rng([rank, 77])
    blob = rng.integers(0, 256, 2000, dtype=np.uint8)
    gshape = (4 * size, 6)
    u = rng.standard_normal((4, 6))
    with vlcc.Checkpointer(path, comm=comm, chunk_size=CHUNK) as ck:
        ck.register("blob", blob)
        ck.register("u", u, global_shape=gshape, offset=(4 * rank, 0))
        v1 = ck.checkpoint()
        saved1 = (blob.copy(), u.copy())
        blob[:] = rng.integers(0, 256, blob.size, dtype=np.uint8)
        u[:] = rng.standard_normal(u.shape)
        v2 = ck.checkpoint()
        payloads = comm.gather(blob.tobytes(), root=0)
        if rank == 0:
            fpath, at = locate(os.path.join(path, "data", v2.id), victim, payloads[victim])
            k = int(np.random.default_rng(5).integers(len(payloads[victim])))
            flip(fpath, at + k)
            chunk = k // CHUNK
        chunk = comm.bcast(chunk if rank == 0 else None, root=0)
        with pytest.raises(vlcc.CorruptionError) as ei:
            ck.restore(v2)
        msg = str(ei.value)
        for w in (v2.id, "provider 'blob'", f"rank {victim}", f"r{victim}.bp", f"chunk {chunk}"):
            assert w in msg, (w, msg)
        if rank == 0:
            with pytest.raises(vlcc.CorruptionError) as ei:
                vlcc.Repository(path).verify(v2)
            for w in (v2.id, "provider 'blob'", f"rank {victim}", f"r{victim}.bp"):
                assert w in str(ei.value)
            assert vlcc.Repository(path).verify(v1)["versions"] == 1
        # The distributed array of v2 is intact: reading it alone works (N→M style
        # reads only touch what they need), and v1 restores bit-exact.
        ck.unregister("blob")
        u[:] = 0
        ck.restore(v2, strict=False)
        ck.register("blob", blob)
        blob[:] = 0
        ck.restore(v1)
    assert blob.tobytes() == saved1[0].tobytes() and u.tobytes() == saved1[1].tobytes()
