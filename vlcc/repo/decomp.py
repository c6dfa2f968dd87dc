"""Decompositions of distributed arrays in format 2 (docs/format.md, 4.1):
which box of the global array each rank stored, described by a rule when
the decomposition is regular, so the manifest does not grow with the rank
count:

* ``{"split": [k0, k1, …]}`` — a grid of k0×k1×… blocks cut as
  ``numpy.array_split`` cuts (the first ``n % k`` parts one element longer),
  rank r holding grid cell ``numpy.unravel_index(r, (k0, k1, …))`` (C order);
* ``{"cuts": [[0, c1, …, n0], …]}`` — any grid, by its cut points per axis,
  same rank order;
* ``{"table": "data/<id>/decomp-<k>.npy", "checksum": "<xxh3_128>"}`` — an
  irregular decomposition: an int64 array of shape (P, 2, ndim) (offset,
  shape per rank) in NumPy's .npy format, O(P) once per distinct table.
"""

from __future__ import annotations

import io

import numpy as np

from ..errors import CorruptionError
from .checksums import chunk_hash


def split_cuts(n: int, k: int) -> list[int]:
    """Cut points of ``numpy.array_split`` of ``n`` elements into ``k`` parts."""
    q, r = divmod(n, k)
    sizes = [q + 1] * r + [q] * (k - r)
    return [0] + np.cumsum(sizes).tolist()


def describe(global_shape, offsets: np.ndarray, shapes: np.ndarray) -> tuple[dict, bytes | None]:
    """The rule for boxes (offsets/shapes: int arrays (P, ndim)); returns the
    manifest description and, for an irregular decomposition, the table
    bytes to store."""
    gs = [int(x) for x in global_shape]
    p = offsets.shape[0]
    if gs and p and (shapes > 0).all():
        cuts = []
        for a, n in enumerate(gs):
            c = sorted(set(offsets[:, a].tolist()) | {n})
            cuts.append(c)
        dims = tuple(len(c) - 1 for c in cuts)
        if int(np.prod(dims)) == p:
            cell = np.stack(np.unravel_index(np.arange(p), dims), axis=1)
            lo = np.stack([np.asarray(cuts[a])[cell[:, a]] for a in range(len(gs))], 1)
            hi = np.stack([np.asarray(cuts[a])[cell[:, a] + 1] for a in range(len(gs))], 1)
            if np.array_equal(lo, offsets) and np.array_equal(hi - lo, shapes):
                if all(c == split_cuts(n, k) for c, n, k in zip(cuts, gs, dims)):
                    return {"split": list(dims)}, None
                return {"cuts": cuts}, None
    table = np.stack([offsets, shapes], axis=1).astype("<i8")
    buf = io.BytesIO()
    np.save(buf, table, allow_pickle=False)
    raw = buf.getvalue()
    return {"checksum": chunk_hash(raw)}, raw


def boxes(desc: dict, global_shape, nranks: int, read_table) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, shapes), int64 arrays (P, ndim), from a description;
    ``read_table(rel)`` returns a table file's bytes."""
    gs = [int(x) for x in global_shape]
    if "split" in desc or "cuts" in desc:
        cuts = desc.get("cuts") or [split_cuts(n, k) for n, k in zip(gs, desc["split"])]
        dims = tuple(len(c) - 1 for c in cuts)
        if int(np.prod(dims)) != nranks:
            raise CorruptionError(f"decomposition {desc} has {int(np.prod(dims))} blocks, "
                                  f"the version {nranks} ranks")
        cell = np.stack(np.unravel_index(np.arange(nranks), dims), axis=1).reshape(nranks, len(gs))
        cut = [np.asarray(c, np.int64) for c in cuts]
        lo = np.stack([cut[a][cell[:, a]] for a in range(len(gs))], 1) if gs else np.zeros((nranks, 0), np.int64)
        hi = np.stack([cut[a][cell[:, a] + 1] for a in range(len(gs))], 1) if gs else lo
        return lo, hi - lo
    raw = read_table(desc["table"])
    if chunk_hash(raw) != desc.get("checksum"):
        raise CorruptionError(f"decomposition table {desc['table']}: checksum mismatch")
    try:
        t = np.load(io.BytesIO(raw), allow_pickle=False)
    except ValueError as exc:
        raise CorruptionError(f"decomposition table {desc['table']}: {exc}") from None
    if t.shape != (nranks, 2, len(gs)):
        raise CorruptionError(f"decomposition table {desc['table']} has shape {t.shape}, "
                              f"expected {(nranks, 2, len(gs))}")
    return t[:, 0, :].astype(np.int64), t[:, 1, :].astype(np.int64)
