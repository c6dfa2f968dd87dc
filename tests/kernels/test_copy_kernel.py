"""kernels/copy.assign: the same bytes as ``dst[...] = src`` at every relative
alignment, shape and dtype (its speed is measured in benchmarks/bench_restore.py)."""

from __future__ import annotations

import mmap

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from vlcc.kernels.copy import ALIGN, assign, misaligned


def _at(nbytes: int, mis: int) -> np.ndarray:
    """A uint8 buffer whose address is ``mis`` bytes past an ALIGN boundary."""
    raw = np.empty(nbytes + 2 * ALIGN, np.uint8)
    o = (-raw.ctypes.data) % ALIGN + mis
    return raw[o:o + nbytes]


@settings(max_examples=150, deadline=None)
@given(rows=st.integers(1, 700), cols=st.integers(1, 1200), itemsize=st.sampled_from([1, 4, 8]),
       c0=st.integers(0, 300), extra=st.integers(0, 300),
       smis=st.integers(0, ALIGN - 1), dmis=st.integers(0, ALIGN - 1))
def test_assign_equals_numpy(rows, cols, itemsize, c0, extra, smis, dmis):
    dt = np.dtype(f"u{itemsize}")
    src = _at(rows * cols * itemsize, smis).view(dt).reshape(rows, cols)
    src[...] = np.arange(src.size, dtype=np.uint64).astype(dt).reshape(rows, cols)
    width = c0 + cols + extra
    big = _at(rows * width * itemsize, dmis).view(dt).reshape(rows, width)
    big[...] = 0
    want = big.copy()
    want[:, c0:c0 + cols] = src
    assign(big[:, c0:c0 + cols], src)
    assert np.array_equal(big, want)


def test_assign_from_a_read_only_mapping_of_4k_rows(tmp_path):
    # the restore's case: page-aligned mapped pieces into a malloc'd array
    rows, cols = 1024, 512
    data = np.random.default_rng(0).standard_normal((rows, cols))
    p = tmp_path / "f"
    data.tofile(p)
    with open(p, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        src = np.frombuffer(mm, np.float64).reshape(rows, cols)
        out = _at(rows * 2 * cols * 8, 16).view(np.float64).reshape(rows, 2 * cols)
        out[...] = 0
        assert misaligned(out[:, 100:100 + cols], src)
        assign(out[:, 100:100 + cols], src)
        assert np.array_equal(out[:, 100:100 + cols], data)
        assert not out[:, :100].any() and not out[:, 100 + cols:].any()
        del src
        mm.close()


@pytest.mark.parametrize("dmis,expect", [(0, False), (32, True), (16, True)])
def test_misaligned_rule(dmis, expect):
    src = _at(64 * 4096, 0).reshape(64, 4096)
    dst = _at(64 * 8192, dmis).reshape(64, 8192)[:, :4096]
    assert misaligned(dst, src) is expect
    # short runs go through glibc's vector loop: never misaligned
    assert not misaligned(dst[:, :1024], src[:, :1024])


@pytest.mark.parametrize("mis", [0, 8, 16, 48])
def test_assign_3d_boxes(mis):
    # a 3-D piece into a box of a larger array: leading axes that merge
    # (whole middle extent) and that do not (a sub-range of it)
    src = _at(6 * 5 * 700 * 8, 0).view(np.float64).reshape(6, 5, 700)
    src[...] = np.random.default_rng(mis).standard_normal(src.shape)
    for mid in (slice(0, 5), slice(2, 7)):
        big = _at(6 * 9 * 900 * 8, mis).view(np.float64).reshape(6, 9, 900)
        big[...] = 0
        want = big.copy()
        want[:, mid, 100:800] = src
        assign(big[:, mid, 100:800], src)
        assert np.array_equal(big, want)
