"""Typed records of the on-disk format, with their JSON form in one place
(docs/format.md, sections 3 and 4).

A chunk entry stays a 7-element JSON list on disk (compact, and what format
1 wrote); in memory it is a ``ChunkEntry`` with field names instead of
``c[3]``. Provider kinds are a ``str`` enum so they compare and serialize as
the strings the format uses."""

from __future__ import annotations

import enum
from typing import NamedTuple


class Kind(str, enum.Enum):
    """What a leaf stores (docs/format.md, section 3)."""
    DISTRIBUTED = "distributed"   # a box of a global array: restorable N→M
    ARRAY = "array"               # a whole per-rank array
    VALUE = "value"               # a pickled Python object
    DERIVED = "derived"           # no bytes: a recipe over other providers (3.2)

    def __str__(self) -> str:     # f-strings and JSON keys show the format's word
        return self.value


class ChunkEntry(NamedTuple):
    """One chunk of a leaf in a rank index: its stored bytes are
    ``[offset, offset + stored)`` of ``var`` in ``files[file]``, decoded by
    ``codecs[codec]`` into ``nbytes`` bytes whose xxh3-128 is ``hash``."""
    file: int
    var: str
    offset: int
    stored: int
    nbytes: int
    hash: str
    codec: int

    # A NamedTuple is a tuple: json.dumps writes it as the format's list.


BLOCK_KEYS = ("shape", "offset", "digest", "pack")


class IndexLeaf(NamedTuple):
    """A leaf of a rank index: its size, chunk size and chunks in stored order;
    in format 2 also this rank's block of the leaf (``shape``, ``offset`` of
    a distributed leaf, ``digest``, ``pack`` of a coalesced leaf), which
    format 1 kept in the manifest. Format 3: ``tile`` of a distributed leaf
    stored on the global grid (section 3.3): its chunks are the block's
    pieces in tile-major order, one per piece, of varying sizes."""
    nbytes: int
    chunk_size: int
    chunks: list                  # of ChunkEntry
    block: dict | None = None     # format 2: {"shape", "digest", ["offset"], ["pack"]}
    tile: tuple | None = None     # format 3: the global tile shape of a tiled leaf

    def to_json(self) -> dict:
        d = {"nbytes": self.nbytes, "chunk_size": self.chunk_size, "chunks": list(self.chunks)}
        if self.block:
            d.update(self.block)
        if self.tile is not None:
            d["tile"] = [int(x) for x in self.tile]
        return d

    @classmethod
    def from_json(cls, d: dict) -> "IndexLeaf":
        block = {k: d[k] for k in BLOCK_KEYS if k in d} or None
        tile = tuple(int(x) for x in d["tile"]) if d.get("tile") is not None else None
        return cls(int(d["nbytes"]), int(d["chunk_size"]), [ChunkEntry(*c) for c in d["chunks"]],
                   block, tile)

    def starts(self) -> list[int]:
        """Byte offset of each chunk in the leaf's stored bytes (the running
        sum of the chunk sizes: ``k * chunk_size`` for fixed-size chunks)."""
        out, s = [], 0
        for c in self.chunks:
            out.append(s)
            s += c.nbytes
        return out
