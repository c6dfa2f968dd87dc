"""The bytes of stored chunks of one version (one job of the restore's
reader): chunks of a leaf into a buffer of its stored bytes, each verified
(restore/fetch.py moves and hashes them), packed blocks cut out of their
pack leaf; the open BP5 files of the version."""

from __future__ import annotations

import numpy as np

from ..engine.buffers import available_memory
from ..errors import CorruptionError
from ..io.bp5 import BlockReader
from ..repo.checksums import chunk_hash, digest_of
from ..repo.paths import RepoPaths
from .fetch import ChunkRead, fetch, stream
from .profile import stage
from .version_meta import VersionMeta


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


class ChunkReader(VersionMeta):
    """Verified chunk bytes of one version (its metadata: ``VersionMeta``)."""

    def __init__(self, layout: RepoPaths, manifest: dict, faster: list[RepoPaths] | None = None):
        super().__init__(layout, manifest, faster)
        self._files: dict[str, BlockReader] = {}
        # decoded pack leaves (section 3.1): (rank, pack) -> (bytes, chunk loaded?)
        self._packs: dict[tuple[int, str], tuple[np.ndarray, list]] = {}
        # what this reader fetched (tests count chunks, benchmarks bytes)
        self.stats = {"chunks_read": 0, "bytes_read": 0}

    def _reader(self, rel: str, what: str) -> BlockReader:
        r = self._files.get(rel)
        if r is None:
            meta = self.bp5_metadata(rel)
            with stage("bp5 metadata"):
                r = self._files[rel] = BlockReader(self.path(rel), what=what, metadata=meta,
                                                   offsets=self._offsets.get(rel))
        return r

    def close(self) -> None:
        for r in self._files.values():
            r.close()
        self._files.clear()
        self._packs.clear()

    def read_chunks(self, name: str, rank: int, buf: np.ndarray, which, base: int = 0,
                    defer: list | None = None) -> None:
        """Fill ``buf`` (the leaf's stored bytes from byte ``base`` on, flat) at the
        chunks ``which`` (indices, sorted) of leaf ``name`` as stored by ``rank``,
        each chunk at its own start; verify each. Only bytes move here
        (restore/fetch.py: grouped reads straight into ``buf``, hashing
        overlapped); which chunks a box needs and where they go is the callers'
        geometry. With ``defer`` (a list) ``buf`` is not written: the
        verified copies are queued there (restore/fetch.py)."""
        reads = self._chunk_reads(name, rank, buf, which, base)
        what = f"version {self.vid}, provider {name!r}, rank {rank}"
        fetch(reads, lambda rel: self._reader(rel, f"{what}: "),
              lambda rel: f"{what}, file {self.path(rel)}", defer)

    def _chunk_reads(self, name, rank, buf, which, base, rows=None) -> list[ChunkRead]:
        idx = self.index(rank)
        entry = self.leaf(name, rank)
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
                                   k, 0 if rows is None else rows[k]))
        return reads

    def stream_chunks(self, name: str, rank: int, which, place, rows=None,
                      defer: list | None = None) -> None:
        """Read and verify the chunks ``which`` of leaf ``name`` of ``rank``
        without a leaf-sized buffer, calling ``place(k, bytes, start)`` with
        the bytes of chunk k from byte ``start`` on (slabs of whole rows of
        ``rows[k]`` bytes straight from the page cache, or the whole chunk
        from a scratch buffer; possibly from a worker thread, chunks in any
        order; see restore/fetch.stream)."""
        reads = self._chunk_reads(name, rank, None, which, 0, rows)
        what = f"version {self.vid}, provider {name!r}, rank {rank}"
        stream(reads, lambda rel: self._reader(rel, f"{what}: "),
               lambda rel: f"{what}, file {self.path(rel)}",
               lambda r, data, start: place(r.key, data, start), defer)

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

    def _packed(self, name: str, block: dict) -> np.ndarray:
        """A read-only view of a packed block's bytes inside the (cached) pack
        leaf of its rank; only the pack chunks it overlaps are read (once)."""
        rank, pk = block["rank"], block["pack"]
        pname, off, n = pk["leaf"], int(pk["offset"]), int(block["nbytes"])
        where = f"version {self.vid}, provider {name!r}, rank {rank}"
        key = (rank, pname)
        cached = self._packs.get(key)
        entry = self.leaf(pname, rank, "pack leaf")
        if off < 0 or off + n > entry.nbytes:
            raise CorruptionError(f"{where}: bytes {off}..{off + n} lie outside the pack leaf "
                                  f"{pname!r} of {entry.nbytes} bytes")
        if cached is None:
            cached = self._packs[key] = (alloc_bytes(entry.nbytes, f"{where}, pack {pname!r}"),
                                         [False] * len(entry.chunks))
        buf, loaded = cached
        csize = entry.chunk_size
        if n:
            # plain ints: thousands of small packed providers restore per call
            missing = [k for k in range(off // csize, (off + n - 1) // csize + 1) if not loaded[k]]
            if missing:
                try:
                    self.read_chunks(pname, rank, buf, missing)
                except CorruptionError as exc:
                    raise CorruptionError(f"{where} (packed at bytes {off}..{off + n} of the "
                                          f"pack): {exc}") from exc
                for k in missing:
                    loaded[k] = True
        view = buf[off:off + n]
        if digest_of([chunk_hash(view)]) != block["digest"]:
            raise CorruptionError(f"{where}: packed bytes {off}..{off + n} of pack {pname!r} do "
                                  f"not match the block digest of the manifest")
        return view
