"""Read leaves of one version: only the chunks a target box needs, each
checked against its xxh3_128 hash before its bytes are used.

Two layers: the geometry (which chunks a box needs and where their bytes go:
``_fill_box``, ``_fill_tiled``, with layout/boxes.py and layout/tiles.py) and
the byte reading (``read_chunks``: fill chunk k of a leaf at its own start in
a buffer of the leaf's stored bytes, verified), so the reading can be swapped
for a faster fetcher without touching the geometry."""

from __future__ import annotations

import bisect
import os

import numpy as np

from ..errors import (CorruptionError, MissingProviderError,
                      ShapeMismatchError)
from ..engine.buffers import available_memory
from ..io.bp5 import BlockReader
from ..layout.boxes import intersect, local_slices, needed_chunks
from ..layout.tiles import intersecting, is_contiguous, piece_bounds, pieces, sub_piece
from ..redundancy.dedup import StoredChunk
from ..repo.checksums import chunk_hash, digest_of
from ..repo.fsutil import inside
from ..repo import decomp
from ..repo.index import load_index
from ..repo.manifest import index_rel, rank_indexes
from ..repo.paths import RepoPaths
from ..repo.schema import check_block
from ..repo.values import decode as decode_value
from .fetch import ChunkRead, fetch, stream


def alloc_bytes(nbytes: int, where: str) -> np.ndarray:
    """A buffer for one stored block, refused (CorruptionError) when the
    metadata claims more bytes than this machine could hold: a block was
    written from one rank's memory, so a claim of 1 TiB is damage or a
    crafted index, never a reason to allocate or read until memory runs out."""
    avail = available_memory()
    if nbytes > max(avail, 1 << 30):
        raise CorruptionError(f"{where}: the index claims a block of {nbytes} bytes, more than "
                              f"the {avail} bytes of memory available (damaged or crafted metadata)")
    try:
        return np.empty(nbytes, np.uint8)
    except MemoryError:
        raise CorruptionError(f"{where}: cannot allocate the {nbytes} bytes the index claims") from None


class VersionReader:
    """Reads the stored leaves of one version (a manifest dict)."""

    def __init__(self, layout: RepoPaths, manifest: dict, faster: list[RepoPaths] | None = None,
                 allow_pickle: bool = False):
        self.layout = layout
        # Pickled values (formats 1-3, or written with allow_pickle=True) are
        # refused unless the caller trusts the repository (repo/values.py).
        self.allow_pickle = allow_pickle
        # Faster tiers holding copies of some files (node-local dir): tried first.
        self.faster = list(faster or [])
        self.m = manifest
        self.vid = manifest["id"]
        self.format = int(manifest.get("vlcc_manifest", 1))
        self._refs: list | None = None          # (rank, index rel, checksum) per rank
        self._meta: dict[str, dict | None] = {}  # BP5 file -> its metadata checksums
        self._offsets: dict[str, dict | None] = {}  # BP5 file -> where its variables are in data.0
        self._boxes: dict[str, tuple] = {}
        self._index: dict[int, dict] = {}
        self._files: dict[str, BlockReader] = {}
        # decoded pack leaves (section 3.1): (rank, pack) -> (bytes, chunk loaded?)
        self._packs: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = {}
        self._starts: dict[tuple[int, str], list[int]] = {}   # chunk start offsets per leaf
        # what this reader fetched (tests count chunks, benchmarks bytes)
        self.stats = {"chunks_read": 0, "bytes_read": 0}
        # When a list: every byte range of a stored tiled piece that is exactly
        # a piece of the box being read (tiles.sub_piece), as StoredChunk, so
        # the next version written from these bytes references them (N→M dedup).
        self.subranges: list | None = None

    def path(self, rel: str) -> str:
        """Absolute path of a repository-relative file on the fastest tier holding it.
        A file that a symbolic link leads out of its tier is refused (a crafted
        repository must not make vlcc read /dev/zero or another user's files)."""
        lay = next((lay for lay in self.faster if os.path.exists(lay.abs(rel))), self.layout)
        got = lay.abs(rel)
        if not inside(lay.root, got):
            raise CorruptionError(f"version {self.vid}: {got} leads out of {lay.root} "
                                  f"(a symbolic link): not read")
        return got

    # -- metadata ---------------------------------------------------------
    @property
    def nranks(self) -> int:
        return int(self.m["nranks"])

    def index(self, rank: int) -> dict:
        idx = self._index.get(rank)
        if idx is None:
            if self._refs is None:
                self._refs = rank_indexes(self.layout, self.m)
            _r, rel, checksum = self._refs[rank]
            path = self.path(rel)
            where = f"version {self.vid}, rank {rank}, index file {path}"
            idx = load_index(path, checksum, where)
            self._index[rank] = idx
        return idx

    def bp5_metadata(self, rel: str) -> dict | None:
        """The metadata checksums of BP5 file ``rel`` (``data/V/rK.bp``): format 2
        records them in the index of the same version and rank. None for
        files written by format 1 (nothing to check)."""
        if rel not in self._meta:
            vid, _, name = rel[len("data/"):].partition("/")
            rank = int(name[1:-3])
            if vid == self.vid:
                idx = self.index(rank)
            else:
                ipath = self.path(index_rel(vid, rank))
                idx = load_index(ipath, None, f"version {vid}, rank {rank}, index file {ipath}",
                                 purpose=" (holds the checksums of the BP5 metadata of "
                                         f"{rel}, referenced by version {self.vid})")
            self._meta[rel] = idx.get("bp5") if idx.get("vlcc_index", 1) >= 2 else None
            self._offsets[rel] = idx.get("bp5_offsets")
        return self._meta[rel]

    def _reader(self, rel: str, what: str) -> BlockReader:
        r = self._files.get(rel)
        if r is None:
            meta = self.bp5_metadata(rel)
            r = self._files[rel] = BlockReader(self.path(rel), what=what, metadata=meta,
                                               offsets=self._offsets.get(rel))
        return r

    def close(self) -> None:
        for r in self._files.values():
            r.close()
        self._files.clear()
        self._packs.clear()

    # -- bytes --------------------------------------------------------------
    def chunk_starts(self, name: str, rank: int) -> list[int]:
        """Byte offset of every chunk of leaf ``name`` of ``rank`` in its stored
        bytes (``k * chunk_size`` for fixed-size chunks; format 3 tiled leaves
        have chunks of varying size)."""
        key = (rank, name)
        st = self._starts.get(key)
        if st is None:
            entry = self.index(rank)["leaves"].get(name)
            if entry is None:
                raise CorruptionError(f"version {self.vid}, rank {rank}: index has no leaf {name!r}")
            st = self._starts[key] = entry.starts()
        return st

    def read_chunks(self, name: str, rank: int, buf: np.ndarray, which, base: int = 0) -> None:
        """Fill ``buf`` (the leaf's stored bytes from byte ``base`` on, flat) at the
        chunks ``which`` (indices, sorted) of leaf ``name`` as stored by ``rank``,
        each chunk at its own start; verify each. Only bytes move here
        (restore/fetch.py: grouped reads straight into ``buf``, hashing
        overlapped); which chunks a box needs and where they go is the callers'
        geometry."""
        reads = self._chunk_reads(name, rank, buf, which, base)
        what = f"version {self.vid}, provider {name!r}, rank {rank}"
        fetch(reads, lambda rel: self._reader(rel, f"{what}: "),
              lambda rel: f"{what}, file {self.path(rel)}")

    def _chunk_reads(self, name, rank, buf, which, base) -> list[ChunkRead]:
        idx = self.index(rank)
        entry = idx["leaves"].get(name)
        if entry is None:
            raise CorruptionError(f"version {self.vid}, rank {rank}: index has no leaf {name!r}")
        chunks, codecs, files = entry.chunks, idx["codecs"], idx["files"]
        starts = self.chunk_starts(name, rank)
        which = list(which)
        self.stats["chunks_read"] += len(which)
        self.stats["bytes_read"] += sum(chunks[k].nbytes for k in which)
        reads = []
        for k in which:
            c, at = chunks[k], starts[k]
            codec = codecs[c.codec]
            reads.append(ChunkRead(files[c.file], c.var, c.offset, c.stored, c.nbytes, c.hash,
                                   None if codec["id"] == "raw" else codec, buf, at - base,
                                   f"chunk {k} (bytes {at}..{at + c.nbytes} of the stored block)",
                                   k))
        return reads

    def stream_chunks(self, name: str, rank: int, which, place) -> None:
        """Read and verify the chunks ``which`` of leaf ``name`` of ``rank``
        through cache-sized scratch buffers, calling ``place(k, bytes)`` for each
        verified chunk k (possibly from a worker thread, chunks in any order)."""
        reads = self._chunk_reads(name, rank, None, which, 0)
        what = f"version {self.vid}, provider {name!r}, rank {rank}"
        stream(reads, lambda rel: self._reader(rel, f"{what}: "),
               lambda rel: f"{what}, file {self.path(rel)}", lambda r, data: place(r.key, data))

    def read_range(self, name: str, rank: int, dest: np.ndarray, start: int) -> None:
        """Fill ``dest`` (flat uint8) with bytes ``[start, start + dest.size)`` of
        the stored bytes of ``name`` of ``rank``: chunks inside the range are read
        straight into ``dest``, the (at most two) edge chunks through scratch
        buffers, since a chunk is verified whole."""
        if not dest.size:
            return
        chunks, starts = self._leaf(name, rank).chunks, self.chunk_starts(name, rank)
        stop = start + dest.size
        k0 = bisect.bisect_right(starts, start) - 1
        k1 = bisect.bisect_right(starts, stop - 1) - 1
        inner = [k for k in range(k0, k1 + 1)
                 if starts[k] >= start and starts[k] + chunks[k].nbytes <= stop]
        if inner:
            self.read_chunks(name, rank, dest, inner, base=start)
        for k in sorted({k0, k1} - set(inner)):
            lo = starts[k]
            tmp = np.empty(chunks[k].nbytes, np.uint8)
            self.read_chunks(name, rank, tmp, [k], base=lo)
            a, b = max(lo, start), min(lo + tmp.size, stop)
            dest[a - start:b - start] = tmp[a - lo:b - lo]

    # -- leaves -------------------------------------------------------------
    def entry(self, name: str) -> dict:
        e = self.m["providers"].get(name)
        if e is None:
            raise MissingProviderError(f"version {self.vid} has no provider {name!r} "
                            f"(it has: {', '.join(sorted(self.m['providers']))})")
        return e

    def read_block(self, name: str, block: dict) -> np.ndarray:
        """The whole block of ``name`` written by ``block['rank']``, as its flat
        C-order bytes (a tiled block's pieces put back in place)."""
        entry = None if block.get("pack") is not None else \
            self.index(block["rank"])["leaves"].get(name)
        if entry is not None and entry.tile is not None:
            e = self.entry(name)
            out = np.empty(tuple(block["shape"]), np.dtype(e["dtype"]))
            self._fill_box(name, e, block, out, tuple(block["offset"]), out.shape)
            return out.reshape(-1).view(np.uint8)
        return self.block_bytes(name, block)

    def block_bytes(self, name: str, block: dict, which=None) -> np.ndarray:
        """The stored bytes of one block (flat uint8, in stored order: a tiled
        block's pieces back to back), verified. With ``which`` (chunk indices)
        only those chunks are read; the rest stays undefined. A packed block
        (``block["pack"]``) is cut out of its rank's pack leaf."""
        if block.get("pack") is not None:
            return self._packed(name, block).copy()
        buf = alloc_bytes(block["nbytes"], f"version {self.vid}, provider {name!r}, rank "
                                           f"{block.get('rank')}")
        if which is None:
            which = range(self.nchunks(name, block))
        self.read_chunks(name, block["rank"], buf, which)
        return buf

    def block(self, name: str, rank: int) -> dict:
        """The block ``rank`` stored of leaf ``name``: rank, shape, nbytes,
        digest, offset (distributed), pack (coalesced). Format 1 keeps it in
        the manifest, format 2 in that rank's index."""
        if self.format == 1:
            b = self.entry(name)["blocks"][rank]
        else:
            leaf = self.index(rank)["leaves"].get(name)
            if leaf is None or leaf.block is None:
                raise CorruptionError(f"version {self.vid}, provider {name!r}, rank {rank}: "
                                      f"missing from the rank index")
            b = {"rank": rank, "nbytes": leaf.nbytes, **leaf.block}
        # core hook (issue 10): the block against the manifest's dtype and decomposition
        check_block(f"version {self.vid}, provider {name!r}, rank {rank}", self.entry(name), b,
                    self._box_of(name, rank))
        return b

    def _box_of(self, name: str, rank: int):
        if self.entry(name)["kind"] != "distributed":
            return None
        offs, shps = self.boxes(name)
        return offs[rank], shps[rank]

    def nblocks(self, name: str) -> int:
        e = self.entry(name)
        return len(e["blocks"]) if self.format == 1 else self.nranks

    def boxes(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(offsets, shapes) of every rank's block of distributed leaf ``name``."""
        got = self._boxes.get(name)
        if got is None:
            e = self.entry(name)
            nd = len(e["global_shape"])
            if self.format == 1:
                bl = e["blocks"]
                got = (np.array([b["offset"] for b in bl], np.int64).reshape(len(bl), nd),
                       np.array([b["shape"] for b in bl], np.int64).reshape(len(bl), nd))
            else:
                got = decomp.boxes(e["decomposition"], e["global_shape"], self.nranks,
                                   self._read_table)
            self._boxes[name] = got
        return got

    def _read_table(self, rel: str) -> bytes:
        try:
            with open(self.layout.abs(rel), "rb") as f:
                return f.read()
        except OSError as exc:
            raise CorruptionError(f"version {self.vid}: decomposition table {rel}: "
                                  f"{exc.strerror or exc}") from None

    def nchunks(self, name: str, block: dict) -> int:
        return len(self._leaf(name, block["rank"]).chunks)

    def _leaf(self, name: str, rank: int):
        entry = self.index(rank)["leaves"].get(name)
        if entry is None:
            raise CorruptionError(f"version {self.vid}, provider {name!r}, rank {rank}: "
                                  f"missing from the rank index")
        return entry

    def _packed(self, name: str, block: dict) -> np.ndarray:
        """A read-only view of a packed block's bytes inside the (cached) pack
        leaf of its rank; only the pack chunks it overlaps are read (once)."""
        rank, pk = block["rank"], block["pack"]
        pname, off, n = pk["leaf"], int(pk["offset"]), int(block["nbytes"])
        where = f"version {self.vid}, provider {name!r}, rank {rank}"
        key = (rank, pname)
        cached = self._packs.get(key)
        entry = self.index(rank)["leaves"].get(pname)
        if entry is None:
            raise CorruptionError(f"{where}: pack leaf {pname!r} missing from the rank index")
        if off < 0 or off + n > entry.nbytes:
            raise CorruptionError(f"{where}: bytes {off}..{off + n} lie outside the pack leaf "
                                  f"{pname!r} of {entry.nbytes} bytes")
        if cached is None:
            nch = len(entry.chunks)
            cached = self._packs[key] = (alloc_bytes(entry.nbytes, f"version {self.vid}, pack {pname!r}"),
                                         np.zeros(nch, bool))
        buf, loaded = cached
        csize = entry.chunk_size
        if n:
            need = np.arange(off // csize, (off + n - 1) // csize + 1)
            missing = need[~loaded[need]]
            if missing.size:
                try:
                    self.read_chunks(pname, rank, buf, missing.tolist())
                except CorruptionError as exc:
                    raise CorruptionError(f"{where} (packed at bytes {off}..{off + n} of the "
                                          f"pack): {exc}") from exc
                loaded[missing] = True
        view = buf[off:off + n]
        if digest_of([chunk_hash(view)]) != block["digest"]:
            raise CorruptionError(f"{where}: packed bytes {off}..{off + n} of pack {pname!r} do "
                                  f"not match the block digest of the manifest")
        return view

    def pick_rank_block(self, name: str, rank: int, nranks: int) -> dict:
        """The block a per-rank leaf restores from on ``rank`` of ``nranks``."""
        e = self.entry(name)
        n = self.nblocks(name)
        if nranks == n:
            return self.block(name, rank)
        if e.get("replicated"):
            return self.block(name, 0)
        raise ShapeMismatchError(
            f"provider {name!r} of version {self.vid} is per-rank data written on {n} "
            f"ranks with different content per rank; it cannot be restored on {nranks} ranks "
            f"(register it as a distributed array to allow N→M restart)")

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
            entry = self.index(block["rank"])["leaves"].get(name)
            if entry is not None and entry.tile is not None:
                self._fill_tiled(name, dtype, block, entry, out, out_off, out_shape, inter)
                return
        if whole and tuple(out_shape) == bshape and out.flags.c_contiguous:
            # Same decomposition: read straight into the application's memory.
            buf = out.reshape(-1).view(np.uint8)
            if packed:
                buf[:] = self._packed(name, block)
            else:
                self.read_chunks(name, block["rank"], buf, range(self.nchunks(name, block)))
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
            csize = self._leaf(name, block["rank"]).chunk_size
            which = needed_chunks(bshape, dtype.itemsize, sub_off, ishape, csize) if bshape else [0]
            buf = self.block_bytes(name, block, which)
        src = buf.view(dtype).reshape(bshape)
        out[local_slices(ioff, ishape, out_off)] = src[local_slices(ioff, ishape, boff)]

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
            self.read_chunks(name, rank, out.reshape(-1).view(np.uint8), which)
            return
        note = self.subranges
        idx = self.index(rank) if note is not None else None

        def place(k: int, data: np.ndarray) -> None:
            po, pshape = ps[k]
            sub_off, sub_shp = intersect(po, pshape, ioff, ishape)
            src = data.view(dtype).reshape(pshape)
            out[local_slices(sub_off, sub_shp, out_off)] = src[local_slices(sub_off, sub_shp, po)]
            c = entry.chunks[k]
            if note is not None and c.stored == c.nbytes and idx["codecs"][c.codec].get("id") == "raw":
                sub = sub_piece(ps[k], entry.tile, out_off, out_shape, dtype.itemsize)
                if sub is not None:     # hashed here, verified bytes in cache
                    s, n = sub
                    note.append(StoredChunk(idx["files"][c.file], c.var, c.offset + s, n, n,
                                            chunk_hash(data[s:s + n]), idx["codecs"][c.codec]))
        self.stream_chunks(name, rank, which, place)


def _contiguous(shape: tuple, sub: tuple) -> bool:
    """Is a sub-box of extent ``sub`` one contiguous run of a C-order array of ``shape``?"""
    axes = [i for i, n in enumerate(sub) if n != 1]
    return not axes or all(sub[j] == shape[j] for j in range(axes[0] + 1, len(shape)))
