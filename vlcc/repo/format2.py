"""Formats 2 and later (docs/format.md, sections 3–5): a provider entry describes
a distributed array's blocks by a decomposition rule or table (repo/decomp.py),
the blocks themselves live in the rank indexes, and the manifest names the rank
table ``ranks.bin`` (16 raw bytes of index checksum per rank) by its checksum.
The same interface as repo/format1.py; :func:`repo.manifest.stored_entry`
picks the module. (The rank table, formats 2–4, is read by
``repo.manifest.rank_indexes``.)"""

from __future__ import annotations

import numpy as np

from . import decomp


class Entry:
    """A provider entry of a format-2 (or later) manifest."""
    blocks_in_manifest = False      # each block is in its rank's index

    def __init__(self, e: dict, nranks: int):
        self.raw = e
        self.nranks = nranks

    @property
    def nblocks(self) -> int:
        return self.nranks           # one block per rank that wrote the version

    @property
    def block_shape(self) -> tuple:
        return tuple(self.raw.get("shape", ()))

    @property
    def nbytes(self) -> int | None:
        return None                  # in the rank indexes, not the manifest

    def block(self, rank: int) -> dict:
        raise KeyError("format 2: a block is in its rank's index (restore/reader.py)")

    def boxes(self, read_table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ranks, offsets, shapes) of a distributed provider's blocks; a
        decomposition table is read with ``read_table(rel)``."""
        offs, shps = decomp.boxes(self.raw["decomposition"], self.raw["global_shape"],
                                  self.nranks, read_table)
        return np.arange(self.nranks), offs, shps


def logical_bytes(doc: dict) -> int:
    return int(doc["logical_bytes"])
