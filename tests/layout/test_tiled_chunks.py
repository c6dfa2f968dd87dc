"""Chunks on the global tile grid (docs/format.md, section 3.3): dedup survives
an N→M restart, a sub-box restore reads only the tiles it overlaps, a flipped
byte inside a piece is caught, and dirty tracking stays exact with pieces.
Writers run under mpiexec (tests/scripts/nm_dedup.py); checks run here."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from mpi4py import MPI

import vlcc
from vlcc.layout.tiles import intersecting, piece_bounds, pieces, tile_shape
from vlcc.repo.paths import RepoPaths
from vlcc.restore.reader import VersionReader
from mpi_helpers import load_module
from conftest import TESTS_DIR

SCRIPTS = os.path.join(TESTS_DIR, "scripts")
nd = load_module(os.path.join(SCRIPTS, "nm_dedup.py"), "nm_dedup")


class _Comm:
    def __init__(self, rank, size):
        self.rank, self.size = rank, size


def _pieces_of(name: str, split: str, nranks: int) -> set:
    """Every (offset, shape) piece of field ``name`` stored by ``nranks`` writers."""
    shape, dtype = nd.FIELDS[name]
    tile = tile_shape(shape, np.dtype(dtype).itemsize, nd.CHUNK)
    out = set()
    for r in range(nranks):
        off, shp = nd.box(shape, split, _Comm(r, nranks))
        out.update(pieces(off, shp, tile))
    return out


def _new_bytes(repo: str, vid: str) -> int:
    (v,) = [x for x in vlcc.Repository(repo).du()["versions"] if x["id"] == vid]
    return v["new_chunk_bytes"]


@pytest.mark.parametrize("split,lean", [("rows", False), ("cols", False), ("rows", True)])
def test_two_then_three_ranks_of_unchanged_data_store_almost_nothing(tmp_path, mpirun, monkeypatch,
                                                                     split, lean):
    # lean: no gather buffer may be had, the writers read the pieces out of
    # the blocks (layout/stored.py); the same chunks, hashes and dedup
    if lean:
        monkeypatch.setenv("VLCC_GATHER_MAX", "0")
    repo = str(tmp_path / "repo")
    v1 = json.loads(mpirun(2, "nm_dedup.py", repo, "write", split).stdout.splitlines()[-1])["version"]
    v2 = json.loads(mpirun(3, "nm_dedup.py", repo, "restart", split).stdout.splitlines()[-1])["version"]
    total = sum(int(np.prod(s)) * np.dtype(d).itemsize for s, d in nd.FIELDS.values())
    assert _new_bytes(repo, v1) == total
    got = _new_bytes(repo, v2)
    if split == "rows":
        # Every piece the 3-rank cut makes is whole tiles or a run of rows of
        # one old piece, referenced as that byte range of the old chunk.
        assert got == 0, got
    else:
        # A column cut is strided inside an old piece: exactly the pieces the
        # 3-rank decomposition cuts differently are new.
        expect = 0
        for name, (shape, dtype) in nd.FIELDS.items():
            fresh = _pieces_of(name, split, 3) - _pieces_of(name, split, 2)
            expect += sum(int(np.prod(s)) for _o, s in fresh) * np.dtype(dtype).itemsize
        assert got == expect
    r = vlcc.Repository(repo)
    # the 2-rank version goes; its files stay while the 3-rank one names them
    r.prune(keep_last=1)
    r.gc()
    assert [v["id"] for v in r.du()["versions"]] == [v2]
    for name, (shape, dtype) in nd.FIELDS.items():
        assert r.read(v2, name).tobytes() == nd.global_data(shape, dtype).tobytes()
    assert r.verify(v2)["versions"] == 1


def test_column_restore_of_row_written_data_reads_only_its_tiles(tmp_path, mpirun):
    repo = str(tmp_path / "repo")
    mpirun(2, "nm_dedup.py", repo, "write", "rows")
    v = vlcc.Repository(repo).log()[0]
    shape, dtype = nd.FIELDS["u"]
    tile = tile_shape(shape, 8, nd.CHUNK)
    for ncols_ranks in (2, 3):
        cuts = nd.split_cuts(shape[1], ncols_ranks)
        for c in range(ncols_ranks):
            off, shp = (0, cuts[c]), (shape[0], cuts[c + 1] - cuts[c])
            reader = VersionReader(RepoPaths(repo), v.manifest)
            try:
                out = np.empty(shp)
                reader.read_box("u", out, off)
                # the tiles of the whole array the column box overlaps
                want = len(intersecting(_pieces_of("u", "rows", 2), off, shp))
                assert reader.stats["chunks_read"] == want
                total = sum(len(reader.index(r)["leaves"]["u"].chunks) for r in range(2))
                if ncols_ranks == 2:     # a column box of one tile column: half the tiles
                    assert tile[1] == cuts[1] and want == total // 2
            finally:
                reader.close()
            g = nd.global_data(shape, dtype)
            assert out.tobytes() == np.ascontiguousarray(g[:, off[1]:off[1] + shp[1]]).tobytes()


def test_flipped_byte_inside_a_piece_is_caught(tmp_path):
    """One rank, a 2-D tiled array: a byte flipped in the middle of a piece is
    reported for that chunk by verify and by any read that needs it; a box
    that does not overlap the piece still reads (only needed chunks are read)."""
    path = str(tmp_path / "repo")
    shape = (96, 40)
    g = np.random.default_rng(3).standard_normal(shape)
    with vlcc.Checkpointer(path, comm=MPI.COMM_SELF, chunk_size=2048) as ck:
        ck.register("g", g, global_shape=shape, offset=(0, 0))
        v = ck.checkpoint()
    tile = tile_shape(shape, 8, 2048)
    ps = pieces((0, 0), shape, tile)
    assert len(ps) > 4
    k = len(ps) // 2
    (po, psh), (start, n) = ps[k], piece_bounds(ps, 8)[k]
    piece = np.ascontiguousarray(g[po[0]:po[0] + psh[0], po[1]:po[1] + psh[1]]).tobytes()
    files = [os.path.join(dp, f) for dp, _d, fs in os.walk(os.path.join(path, "data", v.id))
             for f in fs if f.startswith("data.")]
    hits = [(f, open(f, "rb").read().find(piece)) for f in files]
    hits = [(f, at) for f, at in hits if at >= 0]
    assert len(hits) == 1
    f, at = hits[0]
    with open(f, "r+b") as fh:
        fh.seek(at + n // 2)
        b = fh.read(1)
        fh.seek(at + n // 2)
        fh.write(bytes([b[0] ^ 0x10]))
    repo = vlcc.Repository(path)
    with pytest.raises(vlcc.CorruptionError, match=f"checksum mismatch in chunk {k} "):
        repo.verify(v)
    with pytest.raises(vlcc.CorruptionError, match=f"chunk {k} "):
        repo.read(v, "g")
    with pytest.raises(vlcc.CorruptionError, match=f"chunk {k} "):
        repo.read(v, "g", box=(po, (1, 1)))
    # a box away from the damaged piece reads bit-exact
    other = ps[0]
    assert not intersecting([ps[k]], *other)
    np.testing.assert_array_equal(repo.read(v, "g", box=other), g[:other[1][0], :other[1][1]])
    with vlcc.Checkpointer(path, comm=MPI.COMM_SELF) as ck:
        out = np.zeros(shape)
        ck.register("g", out, global_shape=shape, offset=(0, 0))
        with pytest.raises(vlcc.CorruptionError, match=f"chunk {k} "):
            ck.restore()


def test_dirty_tracking_with_pieces_is_exact(tmp_path):
    """track_dirty=True on a tiled leaf: only the pieces holding changed
    elements are hashed and written, and every version restores bit-exact."""
    path = str(tmp_path / "repo")
    shape = (64, 48)
    a = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    tile = tile_shape(shape, 8, 1024)
    ps = pieces((0, 0), shape, tile)
    saved = []
    with vlcc.Checkpointer(path, comm=MPI.COMM_SELF, chunk_size=1024, track_dirty=True) as ck:
        ck.register("a", a, global_shape=shape, offset=(0, 0))
        vs = [ck.checkpoint()]
        saved.append(a.copy())
        a[5, 7] += 1.0            # one element: one piece
        a[40:42, :] = -1.0        # two full rows: every piece of one tile row
        vs.append(ck.checkpoint())
        saved.append(a.copy())
    changed = {k for k, (o, s) in enumerate(ps)
               if not np.array_equal(saved[0][o[0]:o[0] + s[0], o[1]:o[1] + s[1]],
                                     saved[1][o[0]:o[0] + s[0], o[1]:o[1] + s[1]])}
    assert 1 < len(changed) < len(ps)
    idx = json.load(open(os.path.join(path, "data", vs[1].id, "r0.idx.json")))
    assert idx["stats"]["hashed_chunks"] == len(changed)
    assert idx["stats"]["written_chunks"] == len(changed)
    assert idx["leaves"]["a"]["tile"] == list(tile)
    repo = vlcc.Repository(path)
    for v, want in zip(vs, saved):
        assert repo.read(v, "a").tobytes() == want.tobytes()


def test_parent_indexes_beyond_the_cap_are_the_overlapping_ranks(tmp_path, mpirun, monkeypatch):
    """After N→M with more parent ranks than MAX_CROSS_INDEXES, a rank reads
    the indexes of the parent ranks whose blocks overlap its own (they hold
    its tiles), not only the same rank's."""
    from vlcc.redundancy import dedup
    repo = str(tmp_path / "repo")
    mpirun(3, "nm_dedup.py", repo, "write", "rows")
    v = vlcc.Repository(repo).log()[0]
    monkeypatch.setattr(dedup, "MAX_CROSS_INDEXES", 1)
    shape = nd.FIELDS["u"][0]
    for rank in range(2):      # restarting on 2 ranks
        off, shp = nd.box(shape, "rows", _Comm(rank, 2))
        got = dedup.load_parent_indexes(RepoPaths(repo), v.id, rank, 2, {"u": (off, shp)})
        want = {r for r in range(3)
                if intersecting([nd.box(shape, "rows", _Comm(r, 3))], off, shp)} | {rank}
        assert sorted(i["rank"] for i in got) == sorted(want)
        assert len(got) == 2        # rank 0 overlaps 0, 1; rank 1 overlaps 1, 2
        # without boxes, beyond the cap: only the same rank's
        assert [i["rank"] for i in dedup.load_parent_indexes(RepoPaths(repo), v.id, rank, 2)] == [rank]
