"""Dedup lookup: which chunks are already stored, and who stores the new ones.

Two sources of "already stored" (docs/format.md, "Redundancy and encoding"):

* **the parent version** (versions and branches): a table ``(hash, nbytes) →
  stored chunk`` built from the parent's index of the same rank. A chunk found
  there is referenced (its entry names the older file), not written. Entries
  of the parent index are already resolved to files, so references never
  chain through more than one lookup, and a child of a branch point dedups
  against the branch point.
  After an N→M restart the restore also offers the byte ranges of the
  parent's tiled chunks that are exactly pieces of this rank's new block
  (layout/tiles.sub_piece, hashed as they were restored): a piece the new
  decomposition cuts out of an old tile is then referenced too.
* **the other ranks of the same version** (ranks, replicated data): every rank
  offers its not-yet-stored chunks (hash, sizes, codec) in an allgather; in
  the global order (rank, leaf, chunk) the first offer of a hash writes it,
  every later one references the writer's file of this version. Each rank
  computes the same assignment from the same gathered list: no second round.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..errors import CorruptionError
from ..repo import decomp
from ..repo.index import load_index
from ..repo.manifest import load_manifest, rank_indexes
from ..repo.paths import RepoPaths
from ..repo.sealed import canonical


@dataclass(frozen=True)
class StoredChunk:
    file: str          # repository-relative BP5 file
    var: str           # variable in that file
    offset: int        # byte offset in the variable
    stored: int        # stored (encoded) bytes
    nbytes: int        # decoded bytes
    hash: str          # xxh3_128 hex of the decoded bytes
    codec: dict        # codec config


class Offer(NamedTuple):
    """A chunk a rank has not found stored: offered to the allgather."""
    hash: str
    nbytes: int
    stored: int        # encoded size
    var: str           # the leaf (BP5 variable) it belongs to
    codec: int         # index into the offer's codec list


class ChunkTable:
    """(hash, nbytes) → StoredChunk."""

    def __init__(self):
        self._t: dict[tuple[str, int], StoredChunk] = {}

    def __len__(self) -> int:
        return len(self._t)

    def get(self, h: str, nbytes: int) -> StoredChunk | None:
        return self._t.get((h, nbytes))

    def add(self, c: StoredChunk) -> None:
        self._t.setdefault((c.hash, c.nbytes), c)

    def add_index(self, idx: dict) -> None:
        files, codecs = idx["files"], idx["codecs"]
        for entry in idx["leaves"].values():
            for c in entry.chunks:
                key = (c.hash, c.nbytes)
                if key not in self._t:
                    self._t[key] = StoredChunk(files[c.file], c.var, c.offset, c.stored, c.nbytes,
                                               c.hash, codecs[c.codec])

    @classmethod
    def from_indexes(cls, idxs) -> "ChunkTable":
        t = cls()
        for idx in idxs:
            t.add_index(idx)
        return t


MAX_CROSS_INDEXES = 64   # after N→M, read every parent index up to this many parent ranks


def _overlapping_ranks(layout: RepoPaths, m: dict, boxes: dict) -> set[int]:
    """Parent ranks whose block of a distributed leaf intersects one of this
    rank's boxes (``boxes``: leaf name → (offset, shape)): with chunks on the
    global tile grid (layout/tiles.py) only they can hold this rank's pieces."""
    n = int(m["nranks"])
    out: set[int] = set()

    def read_table(rel):
        try:
            with open(layout.abs(rel), "rb") as f:
                return f.read()
        except OSError as exc:
            raise CorruptionError(f"version {m['id']}: decomposition table {rel}: "
                                  f"{exc.strerror or exc}") from None
    for name, (off, shp) in boxes.items():
        e = m["providers"].get(name)
        if e is None or e.get("kind") != "distributed" or not len(shp) or 0 in shp:
            continue
        if "blocks" in e:      # format 1: the blocks are in the manifest
            offs = np.array([b["offset"] for b in e["blocks"]], np.int64).reshape(-1, len(shp))
            shps = np.array([b["shape"] for b in e["blocks"]], np.int64).reshape(-1, len(shp))
            ranks = np.array([b["rank"] for b in e["blocks"]], np.int64)
        else:
            offs, shps = decomp.boxes(e["decomposition"], e["global_shape"], n, read_table)
            ranks = np.arange(n)
        if offs.shape[1] != len(shp):
            continue
        lo = np.maximum(offs, np.asarray(off, np.int64))
        hi = np.minimum(offs + shps, np.asarray(off, np.int64) + np.asarray(shp, np.int64))
        out.update(ranks[np.all(hi > lo, axis=1)].tolist())
    return out


def load_parent_indexes(layout: RepoPaths, parent: str | None, rank: int, size: int,
                        boxes: dict | None = None) -> list[dict]:
    """The parent version's rank indexes this rank dedups against (each
    checked against the manifest's checksum): the same rank's when the parent
    was written on ``size`` ranks; after an N→M restart, every parent rank's
    up to MAX_CROSS_INDEXES parent ranks; beyond, the same rank's and those
    whose blocks of a distributed leaf overlap this rank's ``boxes`` (leaf
    name → (offset, shape)): the only ones holding its tiles (format 3.3)."""
    if parent is None:
        return []
    m = load_manifest(layout.manifest(parent), parent, layout.root)
    n = int(m["nranks"])
    if n == size:
        which = [rank] if rank < n else []
    elif n > MAX_CROSS_INDEXES:
        which = sorted(({rank} if rank < n else set()) | _overlapping_ranks(layout, m, boxes or {}))
    else:
        which = list(range(n))
    refs = rank_indexes(layout, m) if which else []
    out = []
    for r in which:
        _r, rel, checksum = refs[r]
        ipath = layout.abs(rel)
        where = f"version {parent}, rank {r}, index file {ipath}"
        out.append(load_index(ipath, checksum, where, purpose=" (needed as dedup parent)", rank=r))
    return out


def codec_key(config: dict) -> str:
    return canonical(config)


def assign_owners(offers: list[dict]) -> list[list[tuple]]:
    """Given every rank's offer ``{"codecs": [cfg...], "chunks": [(hash, nbytes,
    stored, var, codec_i), ...]}`` (list index = rank), return per rank and
    offered chunk ``(owner_rank, var, offset, stored, codec, writes)``: where
    the chunk will be in this version, how the owner encodes it, and whether
    this offer is the one that writes it (the first in (rank, leaf, chunk)
    order). The owner packs the chunks it writes per variable in offer order."""
    owner: dict[tuple[str, int], tuple[int, str, int, int, dict]] = {}
    out = []
    for rank, offer in enumerate(offers):
        fill: dict[str, int] = {}
        mine = []
        for h, n, stored, var, ci in offer["chunks"]:
            key = (h, n)
            where = owner.get(key)
            if where is None:
                off = fill.get(var, 0)
                fill[var] = off + stored
                where = owner[key] = (rank, var, off, stored, offer["codecs"][ci])
                mine.append(where + (True,))
            else:
                mine.append(where + (False,))
        out.append(mine)
    return out


def place_own(offer: dict, rank: int) -> list[tuple]:
    """Assignment without any dedup: every offered chunk is written by
    ``rank``, packed per variable in offer order."""
    fill: dict[str, int] = {}
    out = []
    for _h, _n, stored, var, ci in offer["chunks"]:
        off = fill.get(var, 0)
        fill[var] = off + stored
        out.append((rank, var, off, stored, offer["codecs"][ci], True))
    return out
