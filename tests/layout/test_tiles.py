"""Property tests (hypothesis) of the global-grid tiles (vlcc/layout/tiles.py)
against brute force: the tile rule, the pieces of a block, the gather."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vlcc.layout.tiles import (gather, intersecting, is_contiguous, piece_bounds, pieces,
                               sub_piece, tile_shape)


def test_tile_shape_examples():
    # halve the largest extent, the earliest of equal ones: 4096² → 2048×4096 → …
    assert tile_shape((8192, 4096), 8, 4 << 20) == (512, 1024)
    assert tile_shape((4096, 8192), 8, 4 << 20) == (512, 1024)
    assert tile_shape((10,), 8, 4 << 20) == (10,)            # fits: the whole array
    assert tile_shape((7, 5), 8, 64) == (2, 3)               # 7×5 → 4×5 → 4×3 → 2×3 (ceil)
    assert tile_shape((), 8, 1) == ()
    assert tile_shape((3, 3), 16, 8) == (1, 1)               # an element larger than a chunk
    assert tile_shape((0, 9), 8, 16) == (0, 9)               # empty: nothing to cut


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 300), min_size=1, max_size=4), st.sampled_from([1, 2, 4, 8, 16]),
       st.integers(1, 1 << 16))
def test_tile_shape_is_the_halving_rule(gshape, itemsize, chunk):
    # brute force: replay the rule step by step
    t = list(gshape)
    while np.prod(t) * itemsize > chunk and max(t) > 1:
        d = int(np.argmax(t))   # argmax returns the first of equal maxima
        t[d] = (t[d] + 1) // 2
    got = tile_shape(gshape, itemsize, chunk)
    assert got == tuple(t)
    assert np.prod(got) * itemsize <= chunk or max(got) == 1


@st.composite
def block_in_grid(draw):
    nd = draw(st.integers(1, 3))
    gshape = tuple(draw(st.integers(1, 9)) for _ in range(nd))
    off = tuple(draw(st.integers(0, n - 1)) for n in gshape)
    shp = tuple(draw(st.integers(0, n - o)) for n, o in zip(gshape, off))
    tile = tuple(draw(st.integers(1, n)) for n in gshape)
    itemsize = draw(st.sampled_from([1, 2, 8]))
    return gshape, off, shp, tile, itemsize


@settings(max_examples=300, deadline=None)
@given(block_in_grid())
def test_pieces_match_brute_force(case):
    gshape, off, shp, tile, itemsize = case
    ps = pieces(off, shp, tile)
    # brute force: group the block's elements by tile index, tiles in C order
    groups: dict[tuple, list] = {}
    for p in np.ndindex(*shp):
        g = tuple(a + b for a, b in zip(p, off))
        groups.setdefault(tuple(x // t for x, t in zip(g, tile)), []).append(g)
    want = []
    for key in sorted(groups):
        pts = np.array(groups[key])
        lo, hi = pts.min(axis=0), pts.max(axis=0) + 1
        assert len(pts) == int(np.prod(hi - lo))           # a tile ∩ block is a box
        want.append((tuple(lo.tolist()), tuple((hi - lo).tolist())))
    assert ps == want
    # gather: the pieces back to back, each in C order; bounds add up
    rng = np.random.default_rng(len(ps))
    data = rng.integers(0, 256, int(np.prod(shp)) * itemsize, dtype=np.uint8)
    block = data.reshape(shp + (itemsize,))
    got = gather(data, off, shp, ps, itemsize)
    bounds = piece_bounds(ps, itemsize)
    assert sum(n for _, n in bounds) == data.size
    for (po, pshape), (s, n) in zip(ps, bounds):
        sl = tuple(slice(a - b, a - b + m) for a, b, m in zip(po, off, pshape))
        assert got[s:s + n].tobytes() == block[sl].tobytes()
    if is_contiguous(off, shp, ps):
        assert got is data                                  # no copy when nothing moves
    else:   # the element order really changes (so the no-copy test above is not vacuous)
        idx = np.arange(int(np.prod(shp)), dtype=np.int64)
        perm = gather(idx.view(np.uint8), off, shp, ps, 8).view(np.int64)
        assert perm.tolist() != idx.tolist()
    # the pieces a sub-box needs: exactly those sharing an element with it
    if ps:
        sub_off = tuple(o + s // 2 for o, s in zip(off, shp))
        sub_shp = tuple(max(1, s // 2) for s in shp)
        want_k = [k for k, (po, pshape) in enumerate(ps)
                  if all(a < b + m and b < a + n for a, n, b, m in zip(po, pshape, sub_off, sub_shp))]
        assert intersecting(ps, sub_off, sub_shp) == want_k


def test_contiguous_cases():
    # 1-D, and tiles spanning the trailing extents, store the block as it is
    assert is_contiguous((3,), (10,), pieces((3,), (10,), (4,)))
    assert is_contiguous((2, 0), (6, 5), pieces((2, 0), (6, 5), (4, 5)))
    assert is_contiguous((2, 0, 0), (6, 1, 5), pieces((2, 0, 0), (6, 1, 5), (4, 1, 8)))
    assert not is_contiguous((0, 0), (6, 6), pieces((0, 0), (6, 6), (4, 4)))
    assert pieces((0, 0), (0, 3), (2, 2)) == []
    assert pieces((), (), ()) == [((), ())]


@st.composite
def two_blocks(draw):
    nd = draw(st.integers(1, 3))
    gshape = tuple(draw(st.integers(1, 8)) for _ in range(nd))
    tile = tuple(draw(st.integers(1, n)) for n in gshape)

    def box():
        off = tuple(draw(st.integers(0, n - 1)) for n in gshape)
        return off, tuple(draw(st.integers(1, n - o)) for n, o in zip(gshape, off))
    return gshape, tile, box(), box(), draw(st.sampled_from([1, 4, 8]))


@settings(max_examples=400, deadline=None)
@given(two_blocks())
def test_sub_piece_is_the_new_piece_as_one_run_of_the_old(case):
    gshape, tile, old_block, new_block, itemsize = case
    g = np.arange(int(np.prod(gshape)), dtype=np.int64).reshape(gshape)   # element ids
    new_ps = {tuple(int(x) // t for x, t in zip(o, tile)): (o, s) for o, s in pieces(*new_block, tile)}
    for po, pshape in pieces(*old_block, tile):
        old_ids = g[tuple(slice(o, o + n) for o, n in zip(po, pshape))].reshape(-1)
        got = sub_piece((po, pshape), tile, *new_block, itemsize)
        mine = new_ps.get(tuple(int(x) // t for x, t in zip(po, tile)))   # same tile's new piece
        ids = None if mine is None else \
            g[tuple(slice(o, o + n) for o, n in zip(*mine))].reshape(-1)
        # brute force: the new piece's elements are a proper, contiguous run of the old ones
        want = None
        if ids is not None and len(ids) < len(old_ids):
            hits = np.nonzero(old_ids == ids[0])[0]
            if len(hits) and hits[0] + len(ids) <= len(old_ids) \
                    and (old_ids[hits[0]:hits[0] + len(ids)] == ids).all():
                want = (int(hits[0]) * itemsize, len(ids) * itemsize)
        assert got == want, (po, pshape, mine)


def test_sub_piece_examples():
    # (8, 4) tiles of a (16, 4) array; the old block holds rows 0..8, the new one rows 3..10
    assert sub_piece(((0, 0), (8, 4)), (8, 4), (3, 0), (8, 4), 8) == (3 * 4 * 8, 5 * 4 * 8)
    assert sub_piece(((0, 0), (8, 4)), (8, 4), (0, 0), (8, 4), 8) is None     # whole: by hash
    assert sub_piece(((0, 0), (8, 4)), (8, 4), (0, 1), (8, 2), 8) is None     # columns: strided
    assert sub_piece(((0, 0), (4, 4)), (8, 4), (2, 0), (4, 4), 8) is None     # reaches past it


@settings(max_examples=300, deadline=None)
@given(block_in_grid(), st.data())
def test_tile_major_reads_what_gather_copies(case, data):
    # layout/stored.TileMajor: the stored bytes read out of the block where
    # asked for, without a gather buffer — the same bytes and hashes
    from vlcc.layout.stored import Chain, TileMajor, materialize
    from vlcc.repo.checksums import chunk_hash
    gshape, off, shp, tile, itemsize = case
    ps = pieces(off, shp, tile)
    n = int(np.prod(shp)) * itemsize
    if n == 0 or is_contiguous(off, shp, ps):
        return
    src = np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8)
    want = gather(src, off, shp, ps, itemsize)
    tm = TileMajor(src, off, shp, ps, itemsize)
    assert tm.size == n and tm.bounds == piece_bounds(ps, itemsize)
    assert materialize(tm).tobytes() == want.tobytes()
    assert tm.hash_pieces() == [chunk_hash(want[s:s + m]) for s, m in tm.bounds]
    a = data.draw(st.integers(0, n - 1))
    b = data.draw(st.integers(a, n))
    out = np.full(b - a, 7, np.uint8)
    tm.copy_to(out, a)
    assert out.tobytes() == want[a:b].tobytes()
    # a range, and a chain of ranges and arrays, of it
    r = tm.range(a, b - a)
    assert materialize(r).tobytes() == want[a:b].tobytes()
    extra = np.arange(5, dtype=np.uint8)
    ch = Chain([r, extra, tm.range(0, a)])
    assert materialize(ch).tobytes() == want[a:b].tobytes() + extra.tobytes() + want[:a].tobytes()
    assert ch.backing.size >= ch.size


def test_tile_major_hashes_wide_and_narrow_rows_through_scratch():
    # rows longer than the hashing scratch, and a million 8-byte rows
    from vlcc.layout import stored
    from vlcc.repo.checksums import chunk_hash
    for gshape, tile in (((8, 1 << 16), (4, 1 << 15)), ((1 << 17, 4), (1 << 16, 1))):
        src = np.random.default_rng(1).integers(0, 256, int(np.prod(gshape)) * 8, dtype=np.uint8)
        ps = pieces((0, 0), gshape, tile)
        want = gather(src, (0, 0), gshape, ps, 8)
        tm = stored.TileMajor(src, (0, 0), gshape, ps, 8)
        assert tm.hash_pieces() == [chunk_hash(want[s:s + m]) for s, m in tm.bounds]
