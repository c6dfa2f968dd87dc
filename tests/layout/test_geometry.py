"""Property tests (hypothesis) of the N→M geometry against brute force:
box intersection, the chunks a sub-box needs, and decomposition rules."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vlcc.layout.boxes import intersect, local_slices, needed_chunks
from vlcc.repo import decomp

dims = st.integers(1, 3)


@st.composite
def block_and_subbox(draw):
    nd = draw(dims)
    shape = tuple(draw(st.integers(1, 6)) for _ in range(nd))
    off = tuple(draw(st.integers(0, n - 1)) for n in shape)
    sub = tuple(draw(st.integers(1, n - o)) for n, o in zip(shape, off))
    itemsize = draw(st.sampled_from([1, 2, 4, 8]))
    chunk = draw(st.integers(1, 64))
    return shape, off, sub, itemsize, chunk


@settings(max_examples=300, deadline=None)
@given(block_and_subbox())
def test_needed_chunks_is_exactly_the_chunks_holding_the_subbox(case):
    shape, off, sub, itemsize, chunk = case
    # brute force: mark every byte of every element inside the sub-box
    idx = np.arange(int(np.prod(shape))).reshape(shape)
    elems = idx[tuple(slice(o, o + n) for o, n in zip(off, sub))].ravel()
    want = sorted({(e * itemsize + b) // chunk for e in elems.tolist() for b in range(itemsize)})
    assert needed_chunks(shape, itemsize, off, sub, chunk).tolist() == want


@st.composite
def two_boxes(draw):
    nd = draw(dims)
    box = lambda: (tuple(draw(st.integers(-3, 5)) for _ in range(nd)),  # noqa: E731
                   tuple(draw(st.integers(1, 5)) for _ in range(nd)))
    return box(), box()


@settings(max_examples=300, deadline=None)
@given(two_boxes())
def test_intersect_matches_brute_force(boxes):
    (oa, sa), (ob, sb) = boxes
    pts = lambda o, s: {tuple(p) for p in np.ndindex(*s) for p in [tuple(a + b for a, b in zip(p, o))]}  # noqa: E731
    common = pts(oa, sa) & pts(ob, sb)
    got = intersect(oa, sa, ob, sb)
    if not common:
        assert got is None
    else:
        lo, shp = got
        assert pts(lo, shp) == common
        # and the slices select it inside each box
        a = np.zeros(sa, bool)
        a[local_slices(lo, shp, oa)] = True
        assert a.sum() == len(common)


@st.composite
def grid_decomposition(draw):
    nd = draw(dims)
    gs = tuple(draw(st.integers(1, 9)) for _ in range(nd))
    ks = tuple(draw(st.integers(1, n)) for n in gs)
    return gs, ks


@settings(max_examples=200, deadline=None)
@given(grid_decomposition(), st.booleans())
def test_decomposition_rule_round_trips(case, shuffle):
    gs, ks = case
    cuts = [decomp.split_cuts(n, k) for n, k in zip(gs, ks)]
    cells = list(np.ndindex(*ks))
    offs = np.array([[cuts[a][c[a]] for a in range(len(gs))] for c in cells], np.int64)
    shps = np.array([[cuts[a][c[a] + 1] - cuts[a][c[a]] for a in range(len(gs))] for c in cells],
                    np.int64)
    if shuffle and len(cells) > 1:
        perm = np.roll(np.arange(len(cells)), 1)
        offs, shps = offs[perm], shps[perm]
    desc, raw = decomp.describe(gs, offs, shps)
    if raw is None:
        lo, sh = decomp.boxes(desc, gs, len(cells), None)
    else:
        lo, sh = decomp.boxes(dict(desc, table="t"), gs, len(cells), lambda _rel: raw)
    assert np.array_equal(lo, offs) and np.array_equal(sh, shps)
    assert (raw is None) == (not shuffle or len(cells) == 1)
    # the boxes tile the global array exactly once
    cover = np.zeros(gs, int)
    for o, s in zip(lo, sh):
        cover[tuple(slice(a, a + b) for a, b in zip(o, s))] += 1
    assert (cover == 1).all()
