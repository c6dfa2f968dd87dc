"""A tiled block's stored bytes without a gather copy (format 3.3).

A distributed block is stored as its pieces back to back in tile-major order
(layout/tiles.py). Gathering them into a buffer first costs a copy of the
whole block into memory the flush must also hold (outside the memory budget:
as large as the capture itself) and two more passes over DRAM (the write and
its read for ownership). ``TileMajor`` instead reads the stored bytes
straight out of the block's C-order bytes, where they are asked for:

* ``hash_pieces`` hashes each piece through a small scratch buffer that stays
  in cache, a batch of rows per update (streaming xxh3: the same hash as of
  the gathered piece; hashing each strided row where it lies was 3× slower);
* ``copy_to(out, start)`` copies a range of the stored bytes into ``out`` —
  the O_DIRECT writer's bounce buffer (io/direct.py), so the gather becomes
  the write's own copy.

``Range`` and ``Chain`` are lazy byte ranges of it and concatenations of
such ranges (the chunks a rank writes when some were deduplicated). Anything
with ``size``, ``copy_to`` and ``backing`` (an ndarray at least ``size``
bytes long, that ADIOS2 may read while vlcc writes the data itself) is lazy
bytes to the writers; ``materialize`` turns it into an ndarray."""

from __future__ import annotations

import numpy as np
import xxhash

from .tiles import Box, local_slices, piece_bounds

SCRATCH = 256 << 10     # hashing scratch: a batch of piece rows, kept in L2


class TileMajor:
    """The stored bytes of a block (``data``: its C-order bytes, flat uint8)
    whose pieces ``ps`` are not already in C order."""

    def __init__(self, data: np.ndarray, block_offset, block_shape, ps: list[Box], itemsize: int):
        self.backing = data
        self.size = int(data.size)
        self.bounds = piece_bounds(ps, itemsize)
        k = int(itemsize)
        shape = tuple(int(n) for n in block_shape)
        src = data.reshape(shape[:-1] + (shape[-1] * k,))
        # Each piece as 2-D planes (rows of bytes, strided in the block), in
        # the piece's C order: plane j of piece i starts at planes[i][j][0].
        self.planes: list[list[tuple[int, np.ndarray]]] = []
        for (off, shp), (s, _n) in zip(ps, self.bounds):
            sl = local_slices((off, shp), block_offset)
            last = sl[-1]
            v = src[sl[:-1] + (slice(last.start * k, last.stop * k),)]
            v = v.reshape((1,) + v.shape) if v.ndim == 1 else v
            out, pos = [], s
            for idx in np.ndindex(*v.shape[:-2]):
                p = v[idx]
                out.append((pos, p))
                pos += p.size
            self.planes.append(out)

    def hash_pieces(self) -> list[str]:
        """xxh3-128 hex of each piece's stored bytes."""
        scratch = np.empty(SCRATCH, np.uint8)
        out = []
        for planes in self.planes:
            h = xxhash.xxh3_128()
            for _pos, p in planes:
                if p.flags.c_contiguous:
                    h.update(p)
                    continue
                rows, rb = p.shape
                step = max(1, SCRATCH // max(rb, 1))
                for r in range(0, rows, step):
                    m = min(step, rows - r)
                    buf = scratch[:m * rb].reshape(m, rb)
                    np.copyto(buf, p[r:r + m])
                    h.update(buf)
            out.append(h.hexdigest())
        return out

    def copy_to(self, out: np.ndarray, start: int) -> None:
        """Stored bytes [start, start + out.size) into ``out`` (flat uint8)."""
        end = start + out.size
        for planes, (s, n) in zip(self.planes, self.bounds):
            if s + n <= start or s >= end:
                continue
            for pos, p in planes:
                if pos + p.size <= start or pos >= end:
                    continue
                _copy_plane(p, max(start, pos) - pos, min(end, pos + p.size) - pos,
                            out, max(start, pos) - start)

    def range(self, start: int, n: int) -> "Range":
        return Range(self, start, n)


def _copy_plane(p: np.ndarray, a: int, b: int, out: np.ndarray, at: int) -> None:
    """Bytes [a, b) of a 2-D plane (C order of its rows) into out[at:]."""
    rb = p.shape[1]
    r0, c0 = divmod(a, rb)
    r1, c1 = divmod(b, rb)
    if r0 == r1:
        out[at:at + b - a] = p[r0, c0:c1]
        return
    if c0:
        out[at:at + rb - c0] = p[r0, c0:]
        at += rb - c0
        r0 += 1
    if r1 > r0:
        out[at:at + (r1 - r0) * rb].reshape(r1 - r0, rb)[...] = p[r0:r1]
        at += (r1 - r0) * rb
    if c1:
        out[at:at + c1] = p[r1, :c1]


class Range:
    """Bytes [start, start + n) of lazy bytes."""

    def __init__(self, src, start: int, n: int):
        self.src, self.start, self.size = src, int(start), int(n)
        self.backing = src.backing

    def copy_to(self, out: np.ndarray, start: int) -> None:
        self.src.copy_to(out, self.start + start)


class Chain:
    """Lazy bytes or arrays back to back."""

    def __init__(self, parts: list):
        self.parts = list(parts)
        self.size = int(sum(int(p.size) for p in self.parts))
        big = max(self.parts, key=lambda p: getattr(p, "backing", p).size)
        self.backing = getattr(big, "backing", big)
        if self.backing.size < self.size:        # ADIOS2 reads ``size`` bytes of it
            self.backing = np.zeros(self.size, np.uint8)

    def copy_to(self, out: np.ndarray, start: int) -> None:
        end, pos = start + out.size, 0
        for p in self.parts:
            a, b = max(start, pos), min(end, pos + p.size)
            if a < b:
                dst = out[a - start:b - start]
                if isinstance(p, np.ndarray):
                    dst[...] = p[a - pos:b - pos]
                else:
                    p.copy_to(dst, a - pos)
            pos += p.size


def is_lazy(x) -> bool:
    return not isinstance(x, np.ndarray) and hasattr(x, "copy_to")


def materialize(x) -> np.ndarray:
    """Lazy bytes as a flat uint8 array (arrays as they are)."""
    if not is_lazy(x):
        return x
    out = np.empty(x.size, np.uint8)
    x.copy_to(out, 0)
    return out
