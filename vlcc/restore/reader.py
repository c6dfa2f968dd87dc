"""Read leaves of one version: only the chunks a target box needs, each
checked against its xxh3_128 hash before its bytes are used.

Split by job: restore/version_meta.py (indexes, blocks, decompositions: the
one leaf lookup), restore/chunks.py (verified bytes of chunks and packs), and
here the geometry (which chunks a box needs and where their bytes go:
``_fill_box``, ``_fill_tiled``, with layout/boxes.py and layout/tiles.py) and
values, so the reading can be swapped for a faster fetcher without touching
the geometry."""

from __future__ import annotations

import bisect

import numpy as np
import xxhash

from ..errors import CorruptionError, ShapeMismatchError
from ..kernels.copy import assign
from ..layout.boxes import intersect, local_slices, needed_chunks
from ..layout.tiles import intersecting, is_contiguous, piece_bounds, pieces, sub_piece
from ..redundancy.dedup import StoredChunk
from ..repo.paths import RepoPaths
from ..repo.values import decode as decode_value
from .chunks import ChunkReader


class VersionReader(ChunkReader):
    """Reads the stored leaves of one version (a manifest dict) into boxes."""

    def __init__(self, layout: RepoPaths, manifest: dict, faster: list[RepoPaths] | None = None,
                 allow_pickle: bool = False):
        super().__init__(layout, manifest, faster)
        # Pickled values (formats 1-3, or written with allow_pickle=True) are
        # refused unless the caller trusts the repository (repo/values.py).
        self.allow_pickle = allow_pickle
        # When a list: every byte range of a stored tiled piece that is exactly
        # a piece of the box being read (tiles.sub_piece), as StoredChunk, so
        # the next version written from these bytes references them (N→M dedup).
        self.subranges: list | None = None
        # When a list: writes into the caller's ``out`` arrays are queued
        # here as callables (after every chunk they need was verified), not
        # done: the deferred phase 2 of an atomic restore (restore/staging.py).
        self.defer: list | None = None

    def _put(self, write) -> None:
        """A write into the caller's ``out``: now, or queued (``defer``)."""
        if self.defer is None:
            write()
        else:
            self.defer.append(write)

    def read_range(self, name: str, rank: int, dest: np.ndarray, start: int) -> None:
        """Fill ``dest`` (flat uint8) with bytes ``[start, start + dest.size)`` of
        the stored bytes of ``name`` of ``rank``: chunks inside the range are read
        straight into ``dest``, the (at most two) edge chunks through scratch
        buffers, since a chunk is verified whole."""
        if not dest.size:
            return
        chunks, starts = self.leaf(name, rank).chunks, self.chunk_starts(name, rank)
        stop = start + dest.size
        k0 = bisect.bisect_right(starts, start) - 1
        k1 = bisect.bisect_right(starts, stop - 1) - 1
        inner = [k for k in range(k0, k1 + 1)
                 if starts[k] >= start and starts[k] + chunks[k].nbytes <= stop]
        if inner:
            self.read_chunks(name, rank, dest, inner, base=start, defer=self.defer)
        for k in sorted({k0, k1} - set(inner)):
            lo = starts[k]
            tmp = np.empty(chunks[k].nbytes, np.uint8)
            self.read_chunks(name, rank, tmp, [k], base=lo)
            a, b = max(lo, start), min(lo + tmp.size, stop)
            self._put(lambda a=a, b=b, tmp=tmp, lo=lo:
                      dest.__setitem__(slice(a - start, b - start), tmp[a - lo:b - lo]))

    def read_block(self, name: str, block: dict) -> np.ndarray:
        """The whole block of ``name`` written by ``block['rank']``, as its flat
        C-order bytes (a tiled block's pieces put back in place)."""
        entry = None if block.get("pack") is not None else self.leaf(name, block["rank"])
        if entry is not None and entry.tile is not None:
            e = self.entry(name)
            out = np.empty(tuple(block["shape"]), np.dtype(e["dtype"]))
            self._fill_box(name, e, block, out, tuple(block["offset"]), out.shape)
            return out.reshape(-1).view(np.uint8)
        return self.block_bytes(name, block)

    def read_value(self, name: str, rank: int, nranks: int):
        block = self.pick_rank_block(name, rank, nranks)
        buf = self.read_block(name, block)
        return decode_value(buf, self.entry(name)["dtype"], f"version {self.vid}, provider "
                            f"{name!r}, rank {block['rank']}", self.allow_pickle)

    def read_array(self, name: str, out: np.ndarray, rank: int, nranks: int) -> np.ndarray:
        e = self.entry(name)
        block = self.pick_rank_block(name, rank, nranks)
        if tuple(block["shape"]) != out.shape:
            raise ShapeMismatchError(f"provider {name!r}: version {self.vid} has shape "
                                     f"{tuple(block['shape'])} on rank {block['rank']}, target {out.shape}")
        self._fill_box(name, e, block, out, tuple(0 for _ in out.shape), out.shape, direct=True)
        return out

    def read_box(self, name: str, out: np.ndarray, offset) -> np.ndarray:
        """Fill ``out`` with the global box at ``offset`` of distributed leaf ``name``
        (N→M: reads only chunks of stored blocks that intersect the box)."""
        e = self.entry(name)
        shape = out.shape
        covered = 0
        offs, shps = self.boxes(name)
        lo = np.maximum(offs, np.asarray(offset, np.int64))
        hi = np.minimum(offs + shps, np.asarray(offset, np.int64) + np.asarray(shape, np.int64))
        hit = np.nonzero(np.all(hi > lo, axis=1))[0] if len(shape) else np.arange(len(offs))
        for r in hit.tolist():   # only the ranks whose blocks intersect: only their indexes are read
            block = self.block(name, r)
            if 0 in block["shape"]:
                continue
            inter = intersect(block["offset"], block["shape"], offset, shape)
            if inter is None:
                continue
            covered += int(np.prod(inter[1]))
            self._fill_box(name, e, block, out, offset, shape, inter=inter)
        if covered != out.size:
            raise CorruptionError(f"version {self.vid}, provider {name!r}: stored blocks cover "
                                  f"{covered} of the {out.size} elements requested")
        return out

    def _fill_box(self, name, e, block, out, out_off, out_shape, inter=None, direct=False):
        dtype = np.dtype(e["dtype"])
        bshape = tuple(block["shape"])
        boff = tuple(block["offset"]) if block.get("offset") is not None else tuple(0 for _ in bshape)
        if inter is None:
            inter = (boff, bshape)
        ioff, ishape = inter
        whole = tuple(ioff) == boff and tuple(ishape) == bshape
        packed = block.get("pack") is not None
        if not packed:
            entry = self.leaf(name, block["rank"])
            if entry.tile is not None:
                self._fill_tiled(name, dtype, block, entry, out, out_off, out_shape, inter)
                return
        if whole and tuple(out_shape) == bshape and out.flags.c_contiguous:
            # Same decomposition: read straight into the application's memory.
            buf = out.reshape(-1).view(np.uint8)
            if packed:
                got = self._packed(name, block)
                self._put(lambda: buf.__setitem__(slice(None), got))
            else:
                self.read_chunks(name, block["rank"], buf, range(self.nchunks(name, block)),
                                 defer=self.defer)
            return
        sub_off = tuple(a - b for a, b in zip(ioff, boff))
        dst = out[local_slices(ioff, ishape, out_off)]
        if not packed and bshape and dst.flags.c_contiguous and _contiguous(bshape, ishape):
            # The intersection is one byte range of the block and of ``out`` (a row
            # split of an untiled block): read it straight into ``out``.
            start = int(np.ravel_multi_index(sub_off, bshape)) * dtype.itemsize
            self.read_range(name, block["rank"], dst.reshape(-1).view(np.uint8), start)
            return
        if packed:
            buf = self._packed(name, block)
        else:
            csize = self.leaf(name, block["rank"]).chunk_size
            which = needed_chunks(bshape, dtype.itemsize, sub_off, ishape, csize) if bshape else [0]
            buf = self.block_bytes(name, block, which)
        src = buf.view(dtype).reshape(bshape)
        self._put(lambda: assign(out[local_slices(ioff, ishape, out_off)],
                                 src[local_slices(ioff, ishape, boff)]))

    def _fill_tiled(self, name, dtype, block, entry, out, out_off, out_shape, inter) -> None:
        """Fill the part ``inter`` of ``out`` from a block stored on the global
        tile grid (format 3.3): only the pieces that intersect it are read,
        each verified, and each scattered into place."""
        rank = block["rank"]
        bshape, boff = tuple(block["shape"]), tuple(block["offset"])
        ps = pieces(boff, bshape, entry.tile)
        bounds = piece_bounds(ps, dtype.itemsize)
        if len(ps) != len(entry.chunks) or any(c.nbytes != n for c, (_s, n) in
                                                zip(entry.chunks, bounds)):
            raise CorruptionError(f"version {self.vid}, provider {name!r}, rank {rank}: the "
                                  f"chunks of the index do not match the pieces of block "
                                  f"{boff}+{bshape} on tile {entry.tile}")
        ioff, ishape = inter
        which = intersecting(ps, ioff, ishape)
        if (tuple(ioff) == boff and tuple(ishape) == bshape and tuple(out_shape) == bshape
                and out.flags.c_contiguous and is_contiguous(boff, bshape, ps)):
            # Same block, pieces already in C order: read straight into the target.
            self.read_chunks(name, rank, out.reshape(-1).view(np.uint8), which, defer=self.defer)
            return
        note = self.subranges
        idx = self.index(rank) if note is not None else None
        rows = [int(np.prod(p[1][1:], dtype=np.int64)) * dtype.itemsize if p[1] else 0
                for p in ps]
        subs: dict[int, list] = {}      # k -> [start, n, hasher] of a sub-piece to note
        if note is not None:
            for k in which:
                c = entry.chunks[k]
                if c.stored == c.nbytes and idx["codecs"][c.codec].get("id") == "raw":
                    sub = sub_piece(ps[k], entry.tile, out_off, out_shape, dtype.itemsize)
                    if sub is not None:
                        subs[k] = [sub[0], sub[1], xxhash.xxh3_128()]

        def place(k: int, data: np.ndarray, start: int) -> None:
            po, pshape = ps[k]
            if pshape and rows[k]:
                # ``data``: whole rows [r0, r0 + n) of the piece
                r0 = start // rows[k]
                po = (po[0] + r0, *po[1:])
                pshape = (data.size // rows[k], *pshape[1:])
            got = intersect(po, pshape, ioff, ishape)
            if got is not None:
                sub_off, sub_shp = got
                src = data.view(dtype).reshape(pshape)
                assign(out[local_slices(sub_off, sub_shp, out_off)],
                       src[local_slices(sub_off, sub_shp, po)])
            sub = subs.get(k)
            if sub is not None:          # hashed here, verified bytes in cache
                s, n, h = sub
                lo, hi = max(s, start), min(s + n, start + data.size)
                if lo < hi:
                    h.update(data[lo - start:hi - start])
                if hi == s + n:
                    c = entry.chunks[k]
                    note.append(StoredChunk(idx["files"][c.file], c.var, c.offset + s, n, n,
                                            h.hexdigest(), idx["codecs"][c.codec]))
        self.stream_chunks(name, rank, which, place, rows, defer=self.defer)

def _contiguous(shape: tuple, sub: tuple) -> bool:
    """Is a sub-box of extent ``sub`` one contiguous run of a C-order array of ``shape``?"""
    axes = [i for i, n in enumerate(sub) if n != 1]
    return not axes or all(sub[j] == shape[j] for j in range(axes[0] + 1, len(shape)))
