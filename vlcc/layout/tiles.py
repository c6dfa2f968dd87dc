"""Chunks on the global array's grid (docs/format.md, section 3.3): pure geometry.

A distributed leaf's chunks are cut where a grid of equal *tiles* over the
global array cuts the rank's block, not every ``chunk_size`` bytes of the
block. The tile depends only on the global shape, the element size and the
chunk size, so every decomposition of the same array cuts it on the same
grid: a tile that lies inside one block of the old decomposition and one of
the new has the same bytes, hence the same hash, and dedups after an N→M
restart; a reader that needs a sub-box reads only the tiles it overlaps.

A block is stored as its *pieces* (its non-empty intersections with the
tiles), in tile-major order (C order of the tile indices), each piece in C
order, back to back; one chunk per piece."""

from __future__ import annotations

from itertools import product

import numpy as np

Box = tuple[tuple[int, ...], tuple[int, ...]]   # (global offset, shape)


def tile_shape(global_shape, itemsize: int, chunk_size: int) -> tuple:
    """The tile of a global array: start from the whole array and halve
    (rounding up) its largest extent — the earliest dimension among equal
    largest ones — until the tile holds at most ``chunk_size`` bytes (or is
    a single element). Balanced tiles, as zarr chooses chunks; every reader
    and writer recomputes it from the manifest and the index."""
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    t = [int(n) for n in global_shape]
    while t and int(np.prod(t, dtype=np.int64)) * int(itemsize) > chunk_size and max(t) > 1:
        d = t.index(max(t))              # list.index: the earliest of the largest extents
        t[d] = -(-t[d] // 2)
    return tuple(t)


def _axis_parts(off: int, n: int, t: int) -> list[tuple[int, int]]:
    """(global start, length) of the tile-grid cuts of [off, off + n) on one axis."""
    out = []
    s, end = off, off + n
    while s < end:
        e = min((s // t + 1) * t, end)
        out.append((s, e - s))
        s = e
    return out


def pieces(block_offset, block_shape, tile) -> list[Box]:
    """The non-empty intersections of a block with the tile grid, as
    (global offset, shape), in tile-major order (C order of tile indices).
    An empty block has none; a 0-d block is one piece."""
    if any(int(n) == 0 for n in block_shape):
        return []
    axes = [_axis_parts(int(o), int(n), int(t)) for o, n, t in zip(block_offset, block_shape, tile)]
    return [(tuple(p[0] for p in combo), tuple(p[1] for p in combo)) for combo in product(*axes)]


def piece_bounds(ps: list[Box], itemsize: int) -> list[tuple[int, int]]:
    """(start, length) in bytes of each piece in the stored (gathered) buffer."""
    out, s = [], 0
    for _off, shp in ps:
        n = int(np.prod(shp, dtype=np.int64)) * int(itemsize)
        out.append((s, n))
        s += n
    return out


def is_contiguous(block_offset, block_shape, ps: list[Box]) -> bool:
    """True when the pieces, back to back in tile-major order, are exactly the
    block's own C-order bytes (1-D blocks; tiles spanning the block's trailing
    extents): then the block is stored as it is, without a gather copy."""
    nd = len(block_shape)
    expect = 0
    strides = [int(np.prod(block_shape[d + 1:], dtype=np.int64)) for d in range(nd)]
    for off, shp in ps:
        # A sub-box is one C-order run when, after its first extent > 1, it spans
        # the block fully in every later dimension.
        first = next((d for d in range(nd) if shp[d] > 1), nd - 1)
        if any(shp[d] != block_shape[d] for d in range(first + 1, nd)):
            return False
        start = sum((off[d] - block_offset[d]) * strides[d] for d in range(nd))
        if start != expect:
            return False
        expect += int(np.prod(shp, dtype=np.int64))
    return True


def local_slices(box: Box, origin) -> tuple:
    """Slices selecting a global box inside an array whose element 0 sits at ``origin``."""
    off, shp = box
    return tuple(slice(o - b, o - b + n) for o, n, b in zip(off, shp, origin))


def gather(data: np.ndarray, block_offset, block_shape, ps: list[Box], itemsize: int,
           out: np.ndarray | None = None, each=None) -> np.ndarray:
    """The block's bytes (``data``: flat uint8, C order) rearranged as its pieces
    back to back (one copy); ``data`` itself when they already are.
    ``each(k, piece_bytes)`` is called right after piece k is copied, while
    its bytes are in cache (the caller hashes them there: one pass less over
    memory)."""
    if is_contiguous(block_offset, block_shape, ps):
        return data
    # Rows of bytes: the last axis counted in bytes, so numpy copies each
    # piece row as one run (a trailing axis of ``itemsize`` uint8 made numpy
    # copy 8 bytes at a time: 211 ms per 64 MiB, against ~15 ms).
    k = int(itemsize)
    shape = tuple(block_shape)
    src = data.reshape(shape[:-1] + (shape[-1] * k,)) if shape else data
    if out is None:
        out = np.empty(data.size, np.uint8)
    for i, ((off, shp), (s, n)) in enumerate(zip(ps, piece_bounds(ps, itemsize))):
        sl = local_slices((off, shp), block_offset)
        last = sl[-1]
        dst = out[s:s + n].reshape(tuple(shp[:-1]) + (shp[-1] * k,))
        dst[...] = src[sl[:-1] + (slice(last.start * k, last.stop * k),)]
        if each is not None:
            each(i, out[s:s + n])
    return out


def sub_piece(old: Box, tile, block_offset, block_shape, itemsize: int) -> tuple[int, int] | None:
    """Where a new block's piece of the tile holding the stored piece ``old``
    lies inside ``old``, as (start, nbytes) of old's C-order bytes — when it is
    a proper part of ``old`` and one contiguous run of it; else None.

    After an N→M restart by rows (2 → 3 ranks), the new blocks cut some tiles
    where the old ones did not: the new piece is then a run of rows of the old
    one, and a chunk entry may name that byte range of the old chunk (format
    3.3: a chunk is any byte range of a stored raw variable) instead of
    storing the bytes again."""
    po, pshape = old
    t0 = [(int(o) // int(t)) * int(t) for o, t in zip(po, tile)]
    lo = [max(a, int(b)) for a, b in zip(t0, block_offset)]
    hi = [min(a + int(t), int(b) + int(n)) for a, t, b, n in zip(t0, tile, block_offset, block_shape)]
    if any(h <= l for l, h in zip(lo, hi)):
        return None
    shp = [h - l for l, h in zip(lo, hi)]
    if any(l < int(o) or h > int(o) + int(n) for l, h, o, n in zip(lo, hi, po, pshape)):
        return None                         # the new piece reaches past the old one
    if tuple(shp) == tuple(int(n) for n in pshape):
        return None                         # the whole piece: found by its own hash
    axes = [d for d, n in enumerate(shp) if n != 1]
    if axes and any(shp[d] != int(pshape[d]) for d in range(axes[0] + 1, len(shp))):
        return None                         # strided inside the old piece (a column split)
    start = int(np.ravel_multi_index([l - int(o) for l, o in zip(lo, po)], [int(n) for n in pshape]))
    return start * int(itemsize), int(np.prod(shp, dtype=np.int64)) * int(itemsize)


def intersecting(ps: list[Box], box_offset, box_shape) -> list[int]:
    """Indices of the pieces that share an element with the box."""
    out = []
    for k, (off, shp) in enumerate(ps):
        if all(o < bo + bn and bo < o + n
               for o, n, bo, bn in zip(off, shp, box_offset, box_shape)):
            out.append(k)
    return out
