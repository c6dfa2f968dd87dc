"""Box geometry for N→M restart: which bytes of a stored block a new block needs.

A block is (offset, shape) in global index space; its owned bytes are stored
flattened in C order and cut into fixed-size chunks (layout/chunking.py)."""

from __future__ import annotations

import numpy as np


def intersect(off_a, shp_a, off_b, shp_b):
    """Intersection box (offset, shape) of two boxes, or None when empty."""
    lo = [max(a, b) for a, b in zip(off_a, off_b)]
    hi = [min(a + n, b + m) for a, n, b, m in zip(off_a, shp_a, off_b, shp_b)]
    if any(h <= l for l, h in zip(lo, hi)):
        return None
    return tuple(lo), tuple(h - l for l, h in zip(lo, hi))


def local_slices(box_off, box_shp, block_off):
    """Slices selecting a global box inside a block that starts at ``block_off``."""
    return tuple(slice(o - b, o - b + n) for o, n, b in zip(box_off, box_shp, block_off))


def needed_chunks(block_shape, itemsize: int, sub_off, sub_shp, chunk_size: int) -> np.ndarray:
    """Sorted indices of the chunks of a stored block (flattened C order) that
    hold any element of the sub-box ``sub_off/sub_shp`` (block-local coords)."""
    ndim = len(block_shape)
    nbytes = int(np.prod(block_shape, dtype=np.int64)) * itemsize
    nchunks = -(-nbytes // chunk_size)
    if ndim == 0:
        return np.arange(nchunks)
    # Trailing dimensions the box spans fully merge into one contiguous run.
    k = ndim - 1
    while k > 0 and sub_off[k] == 0 and sub_shp[k] == block_shape[k]:
        k -= 1
    run = int(np.prod(sub_shp[k:], dtype=np.int64))
    strides = np.cumprod((list(block_shape[1:]) + [1])[::-1])[::-1].astype(np.int64)
    if k == 0:
        starts = np.array([sub_off[0] * strides[0]], dtype=np.int64)
    else:
        grids = np.meshgrid(*[np.arange(sub_off[i], sub_off[i] + sub_shp[i], dtype=np.int64)
                              for i in range(k)], indexing="ij")
        starts = sum(g.reshape(-1) * strides[i] for i, g in enumerate(grids))
        starts = starts + sub_off[k] * strides[k]
    first = (starts * itemsize) // chunk_size
    last = ((starts + run) * itemsize - 1) // chunk_size
    mark = np.zeros(nchunks + 1, dtype=np.int64)
    np.add.at(mark, first, 1)
    np.add.at(mark, last + 1, -1)
    return np.nonzero(np.cumsum(mark[:-1]) > 0)[0]
