"""Chunk hashes of captured leaves, optionally skipping unchanged chunks.

Without tracking every chunk is hashed (xxh3_128, ~memory bandwidth). With
``track=True`` the tracker keeps a private copy of each leaf's previous
capture and its chunk hashes; the Numba kernel (kernels/dirty.py) compares the
new capture with that copy in one fused pass, refreshes the copy where a chunk
changed, and only dirty chunks are hashed. A clean chunk is byte-identical to
the previous capture, so reusing its hash is exact (no hash trust involved).
Tracking costs one extra copy of the state in memory.

Chunks are fixed-size byte ranges (``chunk_size``) or, for a leaf stored on
the global tile grid (layout/tiles.py), the given ``bounds`` (start, length)
of its pieces in the stored buffer; the tracker compares whatever buffer it
is given, chunk by chunk, so both are exact."""

from __future__ import annotations

import numpy as np

from ..layout.chunking import chunk_bounds
from ..repo.checksums import chunk_hash


class ChunkHasher:
    def __init__(self, track: bool = False):
        self.track = bool(track)
        # leaf -> (chunk bounds, private copy, hashes)
        self._prev: dict[str, tuple[list, np.ndarray, list[str]]] = {}
        self.last_dirty: dict[str, int] = {}   # leaf -> dirty chunks in the last call (stats)

    def hashes(self, name: str, data: np.ndarray, chunk_size: int,
               bounds: list[tuple[int, int]] | None = None) -> list[str]:
        """xxh3-128 of each chunk of ``data`` (flat uint8): fixed-size chunks of
        ``chunk_size`` bytes, or the ``bounds`` given (varying sizes)."""
        fixed = bounds is None
        if fixed:
            bounds = chunk_bounds(data.size, chunk_size)
        if not self.track:
            self.last_dirty[name] = len(bounds)
            return [chunk_hash(data[s:s + n]) for s, n in bounds]
        prev = self._prev.get(name)
        if prev is None or prev[0] != bounds or prev[1].size != data.size:
            copy = np.array(data, dtype=np.uint8, copy=True)
            hs = [chunk_hash(data[s:s + n]) for s, n in bounds]
            self._prev[name] = (list(bounds), copy, hs)
            self.last_dirty[name] = len(bounds)
            return list(hs)
        from ..kernels.dirty import dirty_chunks, dirty_ranges
        _, copy, hs = prev
        mask = dirty_chunks(data, copy, chunk_size, update=True) if fixed else \
            dirty_ranges(data, copy, bounds)
        for c in np.nonzero(mask)[0]:
            s, n = bounds[c]
            hs[c] = chunk_hash(data[s:s + n])
        self.last_dirty[name] = int(mask.sum())
        return list(hs)

    def forget(self, name: str | None = None) -> None:
        if name is None:
            self._prev.clear()
        else:
            self._prev.pop(name, None)
