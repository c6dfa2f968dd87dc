"""One read interface over the tiers a restore reads from: a stored version
on disk (``DiskSource``: the persistent repository, through the node-local
copy when there is one) or a version held in the engine's memory tier
(``MemorySource``). Providers call ``read(name, out)`` and never know which."""

from __future__ import annotations

import numpy as np

from ..errors import ShapeMismatchError
from ..repo.records import Kind
from ..repo.values import decode as decode_value
from ..state.provider import Leaf
from .reader import VersionReader


def read_leaf(reader: VersionReader, name: str, out: np.ndarray | None, *, rank: int, nranks: int,
              offset=None):
    """The per-kind read dispatch (the only copy): a box of a distributed
    leaf at ``offset`` into ``out``, this rank's block of a per-rank array,
    or a value (returned)."""
    kind = reader.entry(name)["kind"]
    if kind == Kind.DISTRIBUTED:
        return reader.read_box(name, out, offset)
    if kind == Kind.VALUE:
        return reader.read_value(name, rank, nranks)
    return reader.read_array(name, out, rank, nranks)


class DiskSource:
    """Leaves of one committed version, read from disk for this rank."""

    def __init__(self, paths, manifest: dict, *, rank: int, nranks: int, offsets: dict,
                 faster=None, allow_pickle: bool = False):
        self.reader = VersionReader(paths, manifest, faster=faster, allow_pickle=allow_pickle)
        self.reader.subranges = []      # N→M: parts of stored tiles that are this rank's pieces
        self.stored = manifest["providers"]
        self.rank, self.nranks, self.offsets = rank, nranks, offsets
        self.where = f"version {manifest['id']}"

    def read(self, name: str, out):
        return read_leaf(self.reader, name, out, rank=self.rank, nranks=self.nranks,
                         offset=self.offsets.get(name))

    def close(self) -> None:
        self.reader.close()


def leaf_view(leaf: Leaf, like: np.ndarray, where: str) -> np.ndarray:
    """A captured leaf's bytes as an array shaped like ``like`` (no copy)."""
    src = leaf.data.view(np.dtype(leaf.dtype)).reshape(leaf.shape)
    if src.shape != like.shape:
        raise ShapeMismatchError(f"provider {leaf.name!r}: {where} has shape {src.shape}, "
                                 f"target {like.shape}")
    return src


def copy_leaf(leaf: Leaf, out: np.ndarray | None, where: str, allow_pickle: bool):
    """A captured leaf back into ``out`` (an array), or its value (``out`` None).
    A pickled value is decoded only with ``allow_pickle`` (the memory tier
    also holds values prefetched from disk)."""
    if out is None:
        return decode_value(leaf.data, leaf.dtype, f"{where}, provider {leaf.name!r}", allow_pickle)
    np.copyto(out, leaf_view(leaf, out, where))
    return out


class MemorySource:
    """Leaves of one version held in the memory tier (captured on this rank)."""

    def __init__(self, vid: str, entry, nranks: int, allow_pickle: bool = False):
        self.entry, self.allow_pickle = entry, allow_pickle
        self.where = f"version {vid} (memory tier)"
        self.stored = {name: leaf.describe() | {"blocks": [None] * nranks, "replicated": False}
                       for name, leaf in entry.leaves.items()}

    def read(self, name: str, out):
        return copy_leaf(self.entry.leaves[name], out, self.where, self.allow_pickle)

    def view(self, name: str, like: np.ndarray) -> np.ndarray:
        """The captured bytes shaped like ``like``: the staging of an atomic
        restore from memory (a private copy already, checked at capture)."""
        return leaf_view(self.entry.leaves[name], like, self.where)

    def close(self) -> None:
        pass
