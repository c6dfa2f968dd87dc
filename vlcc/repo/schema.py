"""Structural check of manifests and rank indexes at load (docs/format.md,
sections 3, 4 and 9): one place that says what a well-formed document is.

A checksum proves a file is what its writer wrote, not that the writer was
right: a foreign or buggy writer can seal a manifest with a missing key, a
string where a number belongs, a negative size or a chunk that names a file
its index does not list. Readers index into these documents everywhere, so
without this check such a file surfaces as KeyError/TypeError/IndexError
somewhere deep in a restore. ``check_manifest`` and ``check_index`` raise
CorruptionError naming the file and the field instead; unknown keys are
ignored (section 9: new optional keys may be added). ``check_block`` checks
what one file cannot: a rank's block against the manifest's dtype and
decomposition."""

from __future__ import annotations

import math
import re

import numpy as np

from ..errors import CorruptionError
from .values import VALUE_DTYPES

_HEX32 = re.compile(r"[0-9a-f]{32}\Z")
_VID = re.compile(r"[0-9a-f]{16}\Z")
_BP5_FILE = re.compile(r"data/[0-9a-f]{16}/[rn][0-9]+\.bp\Z")
_TABLE = re.compile(r"data/[0-9a-f]{16}/decomp-[0-9]+\.npy\Z")
KINDS = ("distributed", "array", "value", "derived")
_MAX_DIM = 64            # numpy's limit on ndim
_MAX_INT = 2 ** 62       # sizes, offsets, shapes: anything larger is not a real file


class _Bad(Exception):
    """A field that is not what the format says; becomes a CorruptionError."""

    def __init__(self, path: str, msg: str):
        super().__init__(path, msg)
        self.path, self.msg = path, msg


def _fail(path: str, msg: str):
    raise _Bad(path, msg)


def _type(v) -> str:
    return "null" if v is None else type(v).__name__


def _dict(v, path: str) -> dict:
    if not isinstance(v, dict):
        _fail(path, f"expected an object, got {_type(v)}")
    return v


def _list(v, path: str, n: int | None = None) -> list:
    if not isinstance(v, list):
        _fail(path, f"expected a list, got {_type(v)}")
    if n is not None and len(v) != n:
        _fail(path, f"expected {n} elements, got {len(v)}")
    return v


def _str(v, path: str, pattern: re.Pattern | None = None, what: str = "") -> str:
    if not isinstance(v, str):
        _fail(path, f"expected a string, got {_type(v)}")
    if pattern is not None and not pattern.match(v):
        _fail(path, f"{v[:60]!r} is not {what}")
    return v


def _int(v, path: str, lo: int = 0) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        _fail(path, f"expected an integer, got {_type(v)}")
    if not lo <= v <= _MAX_INT:
        _fail(path, f"{v} is out of range (must be ≥ {lo})")
    return v


def _key(d: dict, k: str, path: str):
    if k not in d:
        _fail(f"{path}.{k}" if path else k, "missing")
    return d[k]


def _shape(v, path: str) -> list:
    _list(v, path)
    if len(v) > _MAX_DIM:
        _fail(path, f"{len(v)} dimensions")
    for i, x in enumerate(v):
        _int(x, f"{path}[{i}]")
    return v


def _opt(d: dict, k: str, check, path: str) -> None:
    if k in d:
        check(d[k], f"{path}.{k}" if path else k)


def _null_or(check):
    return lambda v, p: None if v is None else check(v, p)


def _vid(v, p):
    return _str(v, p, _VID, "a version id")


def _dtype(v, path: str) -> np.dtype:
    _str(v, path)
    try:
        dt = np.dtype(v)
    except (TypeError, ValueError):
        _fail(path, f"{v[:60]!r} is not a NumPy dtype")
    if dt.hasobject or dt.itemsize == 0:
        _fail(path, f"{v[:60]!r} is not a dtype of stored bytes")
    return dt


def _number(v, path: str) -> None:
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
        _fail(path, f"expected a finite number, got {_type(v)}")


def _where(where: str, what: str, exc: _Bad) -> CorruptionError:
    return CorruptionError(f"{where}: malformed {what}: field {exc.path!r}: {exc.msg}")


# -- manifests ----------------------------------------------------------------------------

def check_manifest(doc: dict, where: str) -> None:
    """Raise CorruptionError naming ``where`` and the field unless ``doc`` (a
    manifest whose seal and version number were checked) is well formed."""
    try:
        _manifest(doc)
    except _Bad as exc:
        raise _where(where, "manifest", exc) from None


def _manifest(doc: dict) -> None:
    fmt = doc.get("vlcc_manifest", 1)
    _vid(_key(doc, "id", ""), "id")
    _null_or(_vid)(doc.get("parent"), "parent")
    _opt(doc, "rebased_from", _null_or(_vid), "")
    _str(_key(doc, "branch", ""), "branch")
    _null_or(_int_any)(doc.get("step"), "step")
    _opt(doc, "message", _str, "")
    _number(_key(doc, "time", ""), "time")
    n = _int(_key(doc, "nranks", ""), "nranks", lo=1)
    for k in ("attrs", "slurm", "run"):
        _opt(doc, k, _dict, "")
    _opt(doc, "hosts", lambda v, p: [_str(h, f"{p}[{i}]") for i, h in enumerate(_list(v, p))], "")
    _opt(doc, "nhosts", _int, "")
    _opt(doc, "logical_bytes", _int, "")
    _opt(doc, "pending", lambda v, p: isinstance(v, bool) or _fail(p, "expected true/false"), "")
    ranks = _key(doc, "ranks", "")
    if fmt == 1:
        _list(ranks, "ranks", n)
        for i, r in enumerate(ranks):
            p = f"ranks[{i}]"
            _dict(r, p)
            if _int(_key(r, "rank", p), f"{p}.rank") != i:
                _fail(f"{p}.rank", f"{r['rank']} at position {i}")
            if _str(_key(r, "index", p), f"{p}.index") != f"data/{doc['id']}/r{i}.idx.json":
                _fail(f"{p}.index", f"{r['index'][:60]!r} is not this version's index of rank {i}")
            _str(_key(r, "index_checksum", p), f"{p}.index_checksum", _HEX32, "a checksum")
    else:
        _dict(ranks, "ranks")
        if _str(_key(ranks, "table", "ranks"), "ranks.table") != f"data/{doc['id']}/ranks.bin":
            _fail("ranks.table", f"{ranks['table'][:60]!r} is not this version's rank table")
        _str(_key(ranks, "checksum", "ranks"), "ranks.checksum", _HEX32, "a checksum")
    provs = _dict(_key(doc, "providers", ""), "providers")
    for name, e in provs.items():
        _provider(e, f"providers.{name}", fmt, n, provs)


def _int_any(v, path: str) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        _fail(path, f"expected an integer, got {_type(v)}")
    return v


def _provider(e, p: str, fmt: int, nranks: int, provs: dict) -> None:
    _dict(e, p)
    kind = _str(_key(e, "kind", p), f"{p}.kind")
    if kind not in KINDS:
        _fail(f"{p}.kind", f"unknown kind {kind[:40]!r} (known: {', '.join(KINDS)})")
    dtype = _key(e, "dtype", p)
    if kind == "value":
        if dtype not in VALUE_DTYPES:
            _fail(f"{p}.dtype", f"a value is stored as {' or '.join(map(repr, VALUE_DTYPES))}, "
                                f"not {str(dtype)[:40]!r}")
    elif kind == "derived":
        if dtype != "recipe":
            _fail(f"{p}.dtype", f"a derived provider has dtype 'recipe', not {str(dtype)[:40]!r}")
        ins = _list(_key(e, "inputs", p), f"{p}.inputs")
        for i, x in enumerate(ins):
            if _str(x, f"{p}.inputs[{i}]") not in provs:
                _fail(f"{p}.inputs[{i}]", f"no provider {x[:60]!r} in this version")
        _key(e, "recipe", p)
    else:
        _dtype(dtype, f"{p}.dtype")
    _opt(e, "replicated", lambda v, q: isinstance(v, bool) or _fail(q, "expected true/false"), p)
    _opt(e, "of", _str, p)
    if kind == "distributed":
        gs = _shape(_key(e, "global_shape", p), f"{p}.global_shape")
        if fmt != 1:
            _decomposition(_key(e, "decomposition", p), f"{p}.decomposition", gs, nranks)
    elif fmt != 1:
        _shape(_key(e, "shape", p), f"{p}.shape")
    if fmt == 1:        # format 1: one block per rank in the manifest
        blocks = _list(_key(e, "blocks", p), f"{p}.blocks")
        if len(blocks) != nranks:
            _fail(f"{p}.blocks", f"{len(blocks)} blocks for {nranks} ranks")
        for i, b in enumerate(blocks):
            q = f"{p}.blocks[{i}]"
            _dict(b, q)
            if _int(_key(b, "rank", q), f"{q}.rank") != i:
                _fail(f"{q}.rank", f"{b['rank']} at position {i}")
            _int(_key(b, "nbytes", q), f"{q}.nbytes")
            _block_fields(b, q, distributed=kind == "distributed")


def _decomposition(d, p: str, gs: list, nranks: int) -> None:
    _dict(d, p)
    if "split" in d:
        split = _list(d["split"], f"{p}.split", len(gs))
        for i, k in enumerate(split):
            _int(k, f"{p}.split[{i}]", lo=1)
        _grid(split, f"{p}.split", nranks)
    elif "cuts" in d:
        cuts = _list(d["cuts"], f"{p}.cuts", len(gs))
        for a, c in enumerate(cuts):
            q = f"{p}.cuts[{a}]"
            _list(c, q)
            for i, x in enumerate(c):
                _int(x, f"{q}[{i}]")
            if len(c) < 2 or c[0] != 0 or c[-1] != gs[a] or any(x > y for x, y in zip(c, c[1:])):
                _fail(q, f"not cut points 0 ≤ … ≤ {gs[a]} of axis {a}")
        _grid([len(c) - 1 for c in cuts], f"{p}.cuts", nranks)
    elif "table" in d:
        _str(d["table"], f"{p}.table", _TABLE, "a decomposition table of this repository")
        _str(_key(d, "checksum", p), f"{p}.checksum", _HEX32, "a checksum")
    else:
        _fail(p, "none of 'split', 'cuts', 'table'")


def _grid(dims: list, p: str, nranks: int) -> None:
    """A grid decomposition has one block per rank (checked before anything
    builds per-block lists: a huge count must not reach an allocation)."""
    blocks = math.prod(dims)
    if blocks != nranks:
        _fail(p, f"a grid of {blocks} blocks for {nranks} ranks")


def _block_fields(b: dict, p: str, *, distributed: bool) -> None:
    """The block keys shared by format 1 manifests and format 2 indexes."""
    shape = _shape(_key(b, "shape", p), f"{p}.shape")
    if distributed or "offset" in b:
        off = _shape(_key(b, "offset", p), f"{p}.offset")
        if len(off) != len(shape):
            _fail(f"{p}.offset", f"{len(off)} dimensions, shape has {len(shape)}")
    _str(_key(b, "digest", p), f"{p}.digest", _HEX32, "a digest")
    if b.get("pack") is not None:
        pk = _dict(b["pack"], f"{p}.pack")
        _str(_key(pk, "leaf", f"{p}.pack"), f"{p}.pack.leaf")
        _int(_key(pk, "offset", f"{p}.pack"), f"{p}.pack.offset")


# -- rank indexes --------------------------------------------------------------------------

def check_index(idx: dict, where: str) -> None:
    """Raise CorruptionError naming ``where`` and the field unless ``idx`` (a
    rank index whose seal and version number were checked) is well formed:
    every chunk names a listed file and codec, chunks tile their leaf, sizes
    and offsets are non-negative integers, packs point into a pack leaf."""
    try:
        _index(idx)
    except _Bad as exc:
        raise _where(where, "rank index", exc) from None


def _node_index(idx: dict) -> None:
    """Format 4 (section 3.4): a node index holds one rank index per block."""
    _opt(idx, "version", _vid, "")
    _int(_key(idx, "node", ""), "node")
    ranks = [_int(r, f"ranks[{i}]") for i, r in enumerate(_list(_key(idx, "ranks", ""), "ranks"))]
    blocks = _dict(_key(idx, "blocks", ""), "blocks")
    if sorted(blocks) != sorted(str(r) for r in ranks):
        _fail("blocks", f"blocks of ranks {sorted(blocks)[:8]}, the index lists ranks {ranks[:8]}")
    _opt(idx, "bp5", lambda v, p: [_str(x, f"{p}.{k}", _HEX32, "a checksum")
                                   for k, x in _dict(v, p).items()], "")
    _opt(idx, "bp5_offsets", lambda v, p: [_int(x, f"{p}.{k}")
                                           for k, x in _dict(v, p).items()], "")
    for r, b in blocks.items():
        _dict(b, f"blocks.{r}")
        try:
            _index(dict(b, vlcc_index=idx["vlcc_index"]))
        except _Bad as exc:
            raise _Bad(f"blocks.{r}.{exc.path}", exc.msg) from None


def _index(idx: dict) -> None:
    if "blocks" in idx:
        return _node_index(idx)
    fmt = idx.get("vlcc_index", 1)
    _opt(idx, "version", _vid, "")
    _opt(idx, "rank", _int, "")
    files = _list(_key(idx, "files", ""), "files")
    for i, f in enumerate(files):
        _str(f, f"files[{i}]", _BP5_FILE, "a data file of this repository (data/<id>/r<k>.bp or n<k>.bp)")
    codecs = _list(_key(idx, "codecs", ""), "codecs")
    for i, c in enumerate(codecs):
        # structure only: the codec itself is built by the reader, which reports
        # an unknown id or a bad config as corruption of the chunk (restore/fetch.py)
        _str(_key(_dict(c, f"codecs[{i}]"), "id", f"codecs[{i}]"), f"codecs[{i}].id")
    _opt(idx, "bp5", lambda v, p: [_str(x, f"{p}.{k}", _HEX32, "a checksum")
                                   for k, x in _dict(v, p).items()], "")
    _opt(idx, "bp5_offsets", lambda v, p: [_int(x, f"{p}.{k}")
                                           for k, x in _dict(v, p).items()], "")
    _opt(idx, "stats", _dict, "")
    leaves = _dict(_key(idx, "leaves", ""), "leaves")
    for name, e in leaves.items():
        p = f"leaves.{name}"
        _dict(e, p)
        nbytes = _int(_key(e, "nbytes", p), f"{p}.nbytes")
        csize = _int(_key(e, "chunk_size", p), f"{p}.chunk_size", lo=1)
        chunks = _list(_key(e, "chunks", p), f"{p}.chunks")
        # format 3 (section 3.3): a tiled leaf's chunks are its pieces, of varying sizes
        tiled = e.get("tile") is not None
        if tiled:
            tile = _shape(e["tile"], f"{p}.tile")
            if any(t < 1 for t in tile):
                _fail(f"{p}.tile", f"{tile} has an empty extent")
            if len(tile) != len(_shape(_key(e, "shape", p), f"{p}.shape")):
                _fail(f"{p}.tile", f"{len(tile)} dimensions, the block {len(e['shape'])}")
        for k, c in enumerate(chunks):
            q = f"{p}.chunks[{k}]"
            _list(c, q, 7)
            if _int(c[0], f"{q}[0] (file)") >= len(files):
                _fail(f"{q}[0] (file)", f"{c[0]} but the index lists {len(files)} file(s)")
            _str(c[1], f"{q}[1] (variable)")
            _int(c[2], f"{q}[2] (offset)")
            _int(c[3], f"{q}[3] (stored bytes)")
            want = min(csize, nbytes - k * csize)
            if _int(c[4], f"{q}[4] (bytes)") != want and not tiled:
                _fail(f"{q}[4] (bytes)", f"{c[4]}, expected {max(want, 0)} for chunk {k} of "
                                         f"{nbytes} bytes in chunks of {csize}")
            _str(c[5], f"{q}[5] (hash)", _HEX32, "a chunk hash")
            if _int(c[6], f"{q}[6] (codec)") >= len(codecs):
                _fail(f"{q}[6] (codec)", f"{c[6]} but the index lists {len(codecs)} codec(s)")
        if tiled:
            if e.get("pack") is not None:
                _fail(f"{p}.tile", "a packed leaf is not tiled")
            if sum(c[4] for c in chunks) != nbytes:
                _fail(f"{p}.chunks", f"pieces of {sum(c[4] for c in chunks)} bytes for a leaf "
                                     f"of {nbytes}")
        elif e.get("pack") is not None:
            if chunks:
                _fail(f"{p}.chunks", "a packed leaf has no chunks of its own")
        elif len(chunks) != -(-nbytes // csize):
            _fail(f"{p}.chunks", f"{len(chunks)} chunks for {nbytes} bytes in chunks of {csize}")
        if fmt != 1 and any(k in e for k in ("shape", "offset", "digest", "pack", "tile")):
            _block_fields(e, p, distributed=False)
            pk = e.get("pack")
            if pk is not None:
                host = leaves.get(pk["leaf"])
                if not isinstance(host, dict) or host.get("pack") is not None:
                    _fail(f"{p}.pack.leaf", f"no pack leaf {str(pk['leaf'])[:60]!r} in this index")
                if pk["offset"] + nbytes > _int(_key(host, "nbytes", f"leaves.{pk['leaf']}"),
                                                f"leaves.{pk['leaf']}.nbytes"):
                    _fail(f"{p}.pack.offset", f"bytes {pk['offset']}..{pk['offset'] + nbytes} lie "
                                              f"outside the pack leaf of {host['nbytes']} bytes")


# -- across files ----------------------------------------------------------------------------

def check_block(where: str, entry: dict, block: dict, box=None) -> None:
    """A rank's block of a provider against the manifest's ``entry``: its
    size is its shape times the dtype's item size (arrays), and a distributed
    block is the box ``(offset, shape)`` the decomposition gives its rank."""
    kind = entry.get("kind")
    if kind in ("distributed", "array"):
        shape = [int(x) for x in block["shape"]]
        need = math.prod(shape) * np.dtype(entry["dtype"]).itemsize   # exact, no overflow
        if need != block["nbytes"]:
            raise CorruptionError(f"{where}: block of shape {tuple(shape)} and dtype "
                                  f"{entry['dtype']} has {block['nbytes']} bytes, expected {need}")
    if kind == "distributed":
        gs = entry["global_shape"]
        off = block.get("offset")
        if off is None or len(off) != len(gs) or len(block["shape"]) != len(gs) or any(
                o + s > g for o, s, g in zip(off, block["shape"], gs)):
            raise CorruptionError(f"{where}: block at {off} of shape {block['shape']} does not lie "
                                  f"in the global shape {gs}")
        if box is not None and (list(map(int, box[0])) != list(off)
                                or list(map(int, box[1])) != list(block["shape"])):
            raise CorruptionError(f"{where}: block at {off} of shape {block['shape']} is not the "
                                  f"box {list(map(int, box[0]))} {list(map(int, box[1]))} the "
                                  f"manifest's decomposition gives this rank")


__all__ = ["check_manifest", "check_index", "check_block"]
