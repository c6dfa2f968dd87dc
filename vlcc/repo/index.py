"""Rank and node indexes (docs/format.md, sections 3 and 3.4): the one loader
every reader uses (restore, dedup, prefetch, verify, gc, du)."""

from __future__ import annotations

import threading

from ..errors import CorruptionError, FormatVersionError
from .checksums import chunk_hash
from .fsutil import read_regular
from .records import IndexLeaf
from .schema import check_index
from .sealed import unseal

INDEX_VERSION = 4
READABLE = (1, 2, 3, 4)   # 3: tiled distributed leaves (section 3.3); 4: node indexes (3.4)

# The last node index parsed: the ranks of a node each ask for their own
# block of one file (restore, dedup), which is parsed and checked once.
_LAST: dict = {}
_LAST_LOCK = threading.Lock()


def is_node_index(idx: dict) -> bool:
    """A format-4 node index (section 3.4): every rank of a node in one file."""
    return "blocks" in idx


def load_index(path: str, expected_checksum: str | None, where: str, *, purpose: str = "",
               rank: int | None = None) -> dict:
    """Read, check and parse an index file (docs/format.md, sections 3 and
    3.4): its bytes must hash to the manifest's ``index_checksum``, its seal
    must hold and its format version must be known. Errors name ``where``.

    A node index with ``rank``: that rank's index as a rank index reads it
    (its block's ``files``, ``codecs``, ``leaves``, ``stats``, with the node
    file's ``bp5`` and ``bp5_offsets``). Without ``rank`` the whole document
    (a node index then has no ``leaves``; see ``rank_views``)."""
    try:
        raw = read_regular(path, where)
    except FileNotFoundError:
        raise CorruptionError(f"{where}: missing{purpose}") from None
    except NotADirectoryError:   # a file where a directory should be
        raise CorruptionError(f"{where}: {path} is not inside a directory") from None
    digest = chunk_hash(raw)
    if expected_checksum is not None and digest != expected_checksum:
        raise CorruptionError(f"{where}: checksum differs from the manifest's")
    with _LAST_LOCK:
        idx = _LAST.get((path, digest))
    if idx is None:
        idx = _parse(raw, where)
        if is_node_index(idx):
            with _LAST_LOCK:
                _LAST.clear()
                _LAST[(path, digest)] = idx
    if rank is None or not is_node_index(idx):
        return idx
    return rank_view(idx, rank, where)


def _parse(raw: bytes, where: str) -> dict:
    idx = unseal(raw, where)
    if idx.get("vlcc_index") not in READABLE:
        raise FormatVersionError(f"{where}: index version {idx.get('vlcc_index')!r}, "
                                 f"this vlcc reads {', '.join(map(str, READABLE))} (written by a newer vlcc?)")
    check_index(idx, where)
    try:
        if is_node_index(idx):
            for b in idx["blocks"].values():
                b["leaves"] = {n: IndexLeaf.from_json(e) for n, e in b["leaves"].items()}
        else:
            idx["leaves"] = {n: IndexLeaf.from_json(e) for n, e in idx["leaves"].items()}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CorruptionError(f"{where}: malformed index ({type(exc).__name__}: {exc})") from None
    return idx


def rank_view(idx: dict, rank: int, where: str) -> dict:
    """Rank ``rank``'s index inside node index ``idx`` (section 3.4)."""
    block = idx["blocks"].get(str(rank))
    if block is None:
        raise CorruptionError(f"{where}: node index of node {idx.get('node')} has no block of "
                              f"rank {rank} (ranks {idx.get('ranks')})")
    view = {"vlcc_index": idx["vlcc_index"], "version": idx.get("version"), "rank": rank,
            "files": block["files"], "codecs": block["codecs"], "leaves": block["leaves"],
            "stats": block.get("stats", {})}
    for k in ("bp5", "bp5_offsets"):
        if k in idx:
            view[k] = idx[k]
    return view


def rank_views(idx: dict, where: str = "") -> list[dict]:
    """Every rank index an index file holds: itself, or a node index's blocks."""
    if not is_node_index(idx):
        return [idx]
    return [rank_view(idx, int(r), where) for r in idx["blocks"]]
