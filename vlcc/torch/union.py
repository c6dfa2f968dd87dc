"""Registering per-rank pieces that only some ranks hold.

A vlcc version has the same provider names on every rank. DCP and DeepSpeed
give each rank different pieces (a shard, one rank's optimizer partition, a
file only rank 0 writes), so every rank registers the union of all ranks'
names: the holder its data, the others an empty array of the same dtype (or
``None`` for a value). ``Repository.read(v, name, rank=holder)`` reads a piece.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import vlcc
from ..comm import protocol


def register_union(ck: vlcc.Checkpointer, comm: Any, mine: dict[str, Any]) -> dict[str, int]:
    """Collective. Register on ``ck`` every name any rank has in ``mine``
    (numpy arrays or picklable values); returns ``{name: holder rank}`` (the
    lowest rank holding it)."""
    everyone = protocol.allgather(comm, lambda: [
        (n, v.dtype.str if isinstance(v, np.ndarray) else None) for n, v in mine.items()])

    def register() -> dict[str, int]:
        holders: dict[str, int] = {}
        for rank, ds in enumerate(everyone):
            for name, dtype in ds:
                if name in holders:
                    continue
                holders[name] = rank
                if dtype is None:
                    ck.register(name, vlcc.ValueProvider(get=lambda n=name: mine.get(n)))
                else:
                    arr = mine.get(name)
                    ck.register(name, arr if isinstance(arr, np.ndarray) else np.empty(0, np.dtype(dtype)))
        return holders
    # a registration refused on one rank is raised on all: the next collective
    # (the checkpoint) must not find that rank gone
    return protocol.agree(comm, register)
