"""The metadata of one stored version, for reading it (one job of the
restore's reader; restore/chunks.py reads bytes, restore/reader.py places
them): rank indexes (loaded once, checked), the one lookup of a leaf in them
(``leaf``), BP5 metadata checksums and offsets, blocks and decompositions."""

from __future__ import annotations

import os

import numpy as np

from ..errors import CorruptionError, MissingProviderError, ShapeMismatchError
from ..repo.fsutil import inside, read_regular
from ..repo.index import load_index
from ..repo.manifest import rank_indexes, stored_entry
from ..repo.paths import RepoPaths
from ..repo.schema import check_block
from .profile import stage


class VersionMeta:
    """Index and manifest lookups of one version (a manifest dict)."""

    def __init__(self, layout: RepoPaths, manifest: dict, faster: list[RepoPaths] | None = None):
        self.layout = layout
        # Faster tiers holding copies of some files (node-local dir): tried first.
        self.faster = list(faster or [])
        self.m = manifest
        self.vid = manifest["id"]
        self.format = int(manifest.get("vlcc_manifest", 1))
        self._refs: list | None = None          # (rank, index rel, checksum) per rank
        self._meta: dict[str, dict | None] = {}  # BP5 file -> its metadata checksums
        self._offsets: dict[str, dict | None] = {}  # BP5 file -> where its variables are in data.0
        self._boxes: dict[str, tuple] = {}
        self._entries: dict[str, object] = {}   # provider -> its format's typed entry record
        self._index: dict[int, dict] = {}
        self._starts: dict[tuple[int, str], list[int]] = {}   # chunk start offsets per leaf

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

    @property
    def nranks(self) -> int:
        return int(self.m["nranks"])

    def index(self, rank: int) -> dict:
        idx = self._index.get(rank)
        if idx is None:
            with stage("index"):
                if self._refs is None:
                    self._refs = rank_indexes(self.layout, self.m)
                _r, rel, checksum = self._refs[rank]
                path = self.path(rel)
                where = f"version {self.vid}, rank {rank}, index file {path}"
                idx = load_index(path, checksum, where, rank=rank)
            self._index[rank] = idx
        return idx

    def leaf(self, name: str, rank: int, what: str = "leaf"):
        """The index entry of leaf ``name`` of ``rank`` (the one lookup; a
        CorruptionError naming version, provider and rank when missing)."""
        entry = self.index(rank)["leaves"].get(name)
        if entry is None:
            raise CorruptionError(f"version {self.vid}, provider {name!r}, rank {rank}: "
                                  f"{what} missing from the rank index")
        return entry

    def bp5_metadata(self, rel: str) -> dict | None:
        """The metadata checksums of BP5 file ``rel`` (``data/V/rK.bp``): format 2
        records them in the index of the same version and rank (format 4:
        ``data/V/nK.bp`` in the node index ``data/V/nK.idx.json``). None for
        files written by format 1 (nothing to check)."""
        if rel not in self._meta:
            vid, _, name = rel[len("data/"):].partition("/")
            rank = int(name[1:-3])
            if vid == self.vid and name.startswith("r"):
                idx = self.index(rank)
            else:
                ipath = self.path(rel[:-len(".bp")] + ".idx.json")
                who = f"node {rank}" if name.startswith("n") else f"rank {rank}"
                idx = load_index(ipath, None, f"version {vid}, {who}, index file {ipath}",
                                 purpose=" (holds the checksums of the BP5 metadata of "
                                         f"{rel}, referenced by version {self.vid})")
            self._meta[rel] = idx.get("bp5") if idx.get("vlcc_index", 1) >= 2 else None
            self._offsets[rel] = idx.get("bp5_offsets")
        return self._meta[rel]

    def chunk_starts(self, name: str, rank: int) -> list[int]:
        """Byte offset of every chunk of leaf ``name`` of ``rank`` in its stored
        bytes (``k * chunk_size`` for fixed-size chunks; format 3 tiled leaves
        have chunks of varying size)."""
        key = (rank, name)
        st = self._starts.get(key)
        if st is None:
            st = self._starts[key] = self.leaf(name, rank).starts()
        return st

    def entry(self, name: str) -> dict:
        e = self.m["providers"].get(name)
        if e is None:
            raise MissingProviderError(f"version {self.vid} has no provider {name!r} "
                            f"(it has: {', '.join(sorted(self.m['providers']))})")
        return e

    def block(self, name: str, rank: int) -> dict:
        """The block ``rank`` stored of leaf ``name``: rank, shape, nbytes,
        digest, offset (distributed), pack (coalesced). Format 1 keeps it in
        the manifest, format 2 in that rank's index."""
        e = self.entry(name)
        stored = self._stored(name, e)
        if stored.blocks_in_manifest:
            b = stored.block(rank)
        else:
            leaf = self.leaf(name, rank)
            if leaf.block is None:
                raise CorruptionError(f"version {self.vid}, provider {name!r}, rank {rank}: "
                                      f"leaf has no block record in the rank index")
            b = {"rank": rank, "nbytes": leaf.nbytes, **leaf.block}
        # core hook (issue 10): the block against the manifest's dtype and decomposition
        check_block(f"version {self.vid}, provider {name!r}, rank {rank}", e, b,
                    self._box_of(name, rank) if e["kind"] == "distributed" else None)
        return b

    def _stored(self, name: str, e: dict | None = None):
        """The typed record of provider ``name``'s manifest entry (made once)."""
        got = self._entries.get(name)
        if got is None:
            got = self._entries[name] = stored_entry(self.entry(name) if e is None else e,
                                                     self.nranks)
        return got

    def _box_of(self, name: str, rank: int):
        if self.entry(name)["kind"] != "distributed":
            return None
        offs, shps = self.boxes(name)
        return offs[rank], shps[rank]

    def nblocks(self, name: str) -> int:
        return self._stored(name).nblocks

    def boxes(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(offsets, shapes) of every rank's block of distributed leaf ``name``."""
        got = self._boxes.get(name)
        if got is None:
            _ranks, *got = self._stored(name).boxes(self._read_table)
            self._boxes[name] = got = tuple(got)
        return got

    def _read_table(self, rel: str) -> bytes:
        what = f"version {self.vid}: decomposition table {rel}"
        try:
            return read_regular(self.path(rel), what)
        except FileNotFoundError:
            raise CorruptionError(f"{what}: missing") from None

    def nchunks(self, name: str, block: dict) -> int:
        return len(self.leaf(name, block["rank"]).chunks)

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
