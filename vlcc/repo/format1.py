"""Format 1 (docs/format.md, "Format 1"): what differs from later formats, in one
place. A format-1 manifest lists every rank's block of every provider
(``providers[name]["blocks"]``) and every rank's index with its checksum
(``ranks``: a list, read by ``repo.manifest.rank_indexes``); later formats keep
blocks in the rank indexes, describe a distributed array's blocks by a rule
(repo/format2.py) and list the indexes in ``ranks.bin``. Readers use
:func:`repo.manifest.stored_entry`, which picks this module or format2.py."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

MANIFEST = 1


class Block(NamedTuple):
    """One rank's stored block of a provider, as a format-1 manifest lists it."""
    rank: int
    shape: tuple
    nbytes: int
    offset: tuple | None        # distributed providers only

    @classmethod
    def of(cls, b: dict) -> "Block":
        off = b.get("offset")
        return cls(int(b["rank"]), tuple(b["shape"]), int(b.get("nbytes", 0)),
                   None if off is None else tuple(off))


def is_entry(e: dict) -> bool:
    """Is this provider entry of a format-1 manifest (blocks in the manifest)?"""
    return "blocks" in e


class Entry:
    """A provider entry of a format-1 manifest."""
    blocks_in_manifest = True

    def __init__(self, e: dict, nranks: int):
        self.raw = e

    @property
    def blocks(self) -> list[Block]:
        return [Block.of(b) for b in self.raw["blocks"]]

    @property
    def nblocks(self) -> int:
        # (the memory tier describes its pending versions' leaves the same way,
        # with a placeholder per rank: restore/sources.py)
        return len(self.raw["blocks"])

    @property
    def block_shape(self) -> tuple:
        """The shape of the first rank's block (a per-rank leaf's shape)."""
        bl = self.raw["blocks"]
        return tuple(bl[0]["shape"]) if bl else tuple(self.raw.get("shape", ()))

    @property
    def nbytes(self) -> int | None:
        return sum(b.nbytes for b in self.blocks)

    def block(self, rank: int) -> dict:
        """Block ``rank`` as the manifest holds it (rank, shape, nbytes, digest, offset)."""
        return self.raw["blocks"][rank]

    def boxes(self, read_table=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ranks, offsets, shapes) of a distributed provider's blocks."""
        nd = len(self.raw["global_shape"])
        bl = self.blocks
        return (np.array([b.rank for b in bl], np.int64),
                np.array([b.offset for b in bl], np.int64).reshape(len(bl), nd),
                np.array([b.shape for b in bl], np.int64).reshape(len(bl), nd))


def logical_bytes(doc: dict) -> int:
    """Bytes of every provider's blocks (later formats record ``logical_bytes``)."""
    return sum(b["nbytes"] for p in doc.get("providers", {}).values() for b in p["blocks"])
