"""Formats 2 and later (docs/format.md, sections 3–5): a provider entry describes
a distributed array's blocks by a decomposition rule or table (repo/decomp.py),
the blocks themselves live in the rank indexes, and the manifest names the rank
table ``ranks.bin`` (16 raw bytes of index checksum per rank) by its checksum.
The same interface as repo/format1.py; :func:`repo.manifest.stored_entry`
picks the module."""

from __future__ import annotations

import numpy as np

from ..errors import CorruptionError, StorageError
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


def rank_indexes(paths, doc: dict) -> list[tuple[int, str, str]]:
    """(rank, index file, its checksum) per rank, from the checked ``ranks.bin``."""
    from .checksums import chunk_hash
    n = int(doc["nranks"])
    info = doc["ranks"]
    rel = info["table"]
    where = f"version {doc['id']}: rank table {paths.abs(rel)}"
    try:
        with open(paths.abs(rel), "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise CorruptionError(f"{where}: missing") from None
    except OSError as exc:   # a file where a directory should be, EACCES, EIO
        raise StorageError(f"{where}: cannot read ({exc.strerror or exc})") from None
    if chunk_hash(raw) != info["checksum"] or len(raw) != 16 * n:
        raise CorruptionError(f"{where}: checksum mismatch (file modified or truncated)")
    return [(r, paths.rel_index_file(doc["id"], r), raw[16 * r:16 * r + 16].hex()) for r in range(n)]


def logical_bytes(doc: dict) -> int:
    return int(doc["logical_bytes"])
