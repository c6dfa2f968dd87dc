"""``vlcc diff A B``: compare two versions provider by provider.

A and B are ``PATH[@SPEC]`` targets, from one repository or two, possibly
written on different rank counts. Distributed arrays are compared on their
global index space, slab by slab (``Repository.read(..., box=...)`` reads only
the chunks of a slab), so arrays larger than memory stream through. Per-rank
arrays and values are compared rank by rank when both sides have the same
number of ranks, or once when a side stored identical bytes on all ranks
(replicated); otherwise they are reported ``incomparable``. Values compare by
value, numbers within the tolerances. Derived providers compare their recipe.

Each provider gives one record (a dict, the same for ``vlcc.diff`` and
``vlcc diff --json``)::

    provider, kind, status ("equal" | "differ" | "only_a" | "only_b" | "incomparable"),
    equal (bool), dtype_a, dtype_b, shape, elements, differing,
    max_abs, max_rel, first_index, note

Global shapes that differ, or kinds that differ, are errors (ShapeMismatchError):
the two sides are not the same quantity."""

from __future__ import annotations

import fnmatch
import itertools
import math
from typing import Iterable, Sequence

import numpy as np

from ..errors import ArgumentError, NotFoundError, ShapeMismatchError, VlccError
from ..repo.manifest import Version, stored_entry
from ..repository import Repository
from . import progress
from .elementwise import Tally, values_equal
from .spec import label, open_target

SLAB_BYTES = 64 << 20    # per side and slab: bounds diff's memory, not the array size


def diff(a: "str | tuple", b: "str | tuple", *, rtol: float = 0.0, atol: float = 0.0,
         providers: Sequence[str] | None = None, progress_bar: bool = False,
         slab_bytes: int = SLAB_BYTES, allow_pickle: bool = False) -> list[dict]:
    """Compare version ``a`` with version ``b`` (the reference side for relative
    differences). ``a``/``b``: ``"PATH[@SPEC]"`` or ``(path_or_repo, spec)``.
    ``providers``: names, prefixes (``heat`` selects ``heat/u``) or globs.
    ``allow_pickle``: unpickle values stored as pickles (trusted repositories only).
    Returns one record per provider (see the module docstring); raises a
    VlccError subclass on bad input. ``exit_status(records)`` gives 0/1."""
    if rtol < 0 or atol < 0 or not all(map(math.isfinite, (rtol, atol))):
        raise ArgumentError(f"tolerances must be finite and >= 0, got rtol={rtol}, atol={atol}")
    if int(slab_bytes) <= 0:
        raise ArgumentError(f"slab_bytes must be positive, got {slab_bytes}")
    ra, va = open_target(a)
    rb, vb = open_target(b)
    names = select(sorted(set(va.providers) | set(vb.providers)), providers,
                   f"{label(ra, va)} or {label(rb, vb)}")
    return [_one(ra, va, rb, vb, n, rtol, atol, progress_bar, int(slab_bytes), allow_pickle)
            for n in names]


def exit_status(records: Iterable[dict]) -> int:
    """diff(1)'s convention: 0 when everything is equal, 1 when something differs."""
    return 0 if all(r["equal"] for r in records) else 1


def select(names: list[str], patterns: Sequence[str] | None, where: str) -> list[str]:
    """Names matching any pattern (exact, ``prefix/...`` or a glob)."""
    if not patterns:
        return names
    out = []
    for pat in patterns:
        hit = [n for n in names if n == pat or n.startswith(pat.rstrip("/") + "/")
               or fnmatch.fnmatchcase(n, pat)]
        if not hit:
            raise NotFoundError(f"no provider matches {pat!r} in {where} "
                                f"(providers: {', '.join(names) or 'none'})")
        out += [n for n in hit if n not in out]
    return sorted(out)


def _record(name: str, kind: str, **kw) -> dict:
    r = {"provider": name, "kind": kind, "status": "equal", "equal": True, "dtype_a": None,
         "dtype_b": None, "shape": None, "elements": 0, "differing": 0, "max_abs": None,
         "max_rel": None, "first_index": None, "note": ""}
    r.update(kw)
    r["equal"] = r["status"] == "equal"
    return r


def _tally_record(rec: dict, t: Tally) -> dict:
    rec.update(elements=t.elements, differing=t.differing, max_abs=t.max_abs, max_rel=t.max_rel,
               first_index=list(t.first_index) if t.first_index is not None else None,
               status="differ" if t.differing else "equal", equal=not t.differing)
    return rec


def _one(ra: Repository, va: Version, rb: Repository, vb: Version, name: str,
         rtol: float, atol: float, bar: bool, slab_bytes: int, allow_pickle: bool) -> dict:
    ea, eb = va.providers.get(name), vb.providers.get(name)
    if ea is None or eb is None:
        e = ea or eb
        side = "only_a" if eb is None else "only_b"
        missing = label(rb, vb) if eb is None else label(ra, va)
        return _record(name, e["kind"], status=side, dtype_a=(ea or {}).get("dtype"),
                       dtype_b=(eb or {}).get("dtype"), note=f"not in {missing}")
    where = f"provider {name!r}: {label(ra, va)} vs {label(rb, vb)}"
    if ea["kind"] != eb["kind"]:
        raise ShapeMismatchError(f"{where}: kinds differ ({ea['kind']} vs {eb['kind']})")
    kind = ea["kind"]
    rec = _record(name, kind, dtype_a=ea.get("dtype"), dtype_b=eb.get("dtype"))
    if kind == "derived":
        same = (ea.get("recipe"), ea.get("inputs")) == (eb.get("recipe"), eb.get("inputs"))
        rec.update(status="equal" if same else "differ", equal=same,
                   note="" if same else f"recipes differ: {ea.get('recipe')!r} vs {eb.get('recipe')!r}")
        return rec
    if kind == "distributed":
        ga, gb = tuple(ea["global_shape"]), tuple(eb["global_shape"])
        if ga != gb:
            raise ShapeMismatchError(f"{where}: global shapes differ ({ga} vs {gb})")
        _dtypes_comparable(ea["dtype"], eb["dtype"], where)
        rec["shape"] = list(ga)
        t = Tally()
        itemsize = max(np.dtype(ea["dtype"]).itemsize, np.dtype(eb["dtype"]).itemsize)
        total = int(np.prod(ga, dtype=np.int64)) * itemsize * 2
        with progress.bar(f"diff {name}", total, enabled=bar) as advance:
            for off, shp in slabs(ga, itemsize, slab_bytes):
                x = ra.read(va, name, box=(off, shp))
                y = rb.read(vb, name, box=(off, shp))
                t.add(x, y, rtol, atol, offset=off)
                advance(x.nbytes + y.nbytes)
        return _tally_record(rec, t)
    # Per-rank arrays and values: which stored blocks face each other.
    pairs, note = _rank_pairs(ea, eb, va.nranks, vb.nranks)
    if pairs is None:
        rec.update(status="incomparable", equal=False, note=note)
        return rec
    if kind == "array":
        _dtypes_comparable(ea["dtype"], eb["dtype"], where)
        t = Tally()
        for ka, kb in pairs:
            x, y = ra.read(va, name, rank=ka), rb.read(vb, name, rank=kb)
            if x.shape != y.shape:
                raise ShapeMismatchError(f"{where}: rank {ka} has shape {x.shape}, "
                                         f"rank {kb} {y.shape}")
            before = t.first_index
            t.add(x, y, rtol, atol)
            if before is None and t.first_index is not None:
                t.first_index = (ka,) + t.first_index    # per-rank data: the rank leads the index
        rec["shape"] = list(stored_entry(ea, 0).block_shape)
        rec = _tally_record(rec, t)
        if note:
            rec["note"] = note
        return rec
    # values
    t = Tally(max_abs=None, max_rel=None)
    for ka, kb in pairs:
        x = ra.read(va, name, rank=ka, allow_pickle=allow_pickle)
        y = rb.read(vb, name, rank=kb, allow_pickle=allow_pickle)
        same, mag = values_equal(x, y, rtol, atol)
        t.elements += 1
        if mag is not None:
            t.max_abs = max(t.max_abs or 0.0, mag)
        if not same:
            t.differing += 1
            if t.first_index is None:
                t.first_index = (ka,)
                rec["note"] = f"{_short(x)} vs {_short(y)}"
    out = _tally_record(rec, t)
    if note and out["equal"]:
        out["note"] = note
    return out


def _rank_pairs(ea: dict, eb: dict, na: int, nb: int):
    """[(rank in a, rank in b)] to compare, and a note; (None, why) if none fit.
    ``na``/``nb``: the versions' rank counts (one block per rank)."""
    if ea.get("replicated") and eb.get("replicated"):
        return [(0, 0)], ("replicated" if na != nb else "")
    if na == nb:
        return [(k, k) for k in range(na)], ""
    if ea.get("replicated"):
        return [(0, k) for k in range(nb)], f"a replicated on {na} ranks, b per rank on {nb}"
    if eb.get("replicated"):
        return [(k, 0) for k in range(na)], f"a per rank on {na} ranks, b replicated on {nb}"
    return None, (f"per-rank data written on {na} and {nb} ranks with different content per "
                  f"rank: no rank of one side corresponds to a rank of the other")


def _dtypes_comparable(da: str, db: str, where: str) -> None:
    ka, kb = np.dtype(da).kind, np.dtype(db).kind
    num = "biufc"
    if (ka in num) != (kb in num) or (ka not in num and np.dtype(da) != np.dtype(db)):
        raise ShapeMismatchError(f"{where}: dtypes {da} and {db} cannot be compared")


def slabs(shape: tuple, itemsize: int, slab_bytes: int):
    """Boxes (offset, shape) covering ``shape`` in C order, each at most
    ``slab_bytes`` (or one row of the innermost axis that fits)."""
    if not shape:
        yield (), ()
        return
    if 0 in shape:
        return
    # Split on the outermost axis k whose trailing block fits in a slab.
    k = 0
    while k < len(shape) - 1 and int(np.prod(shape[k + 1:], dtype=np.int64)) * itemsize > slab_bytes:
        k += 1
    inner = int(np.prod(shape[k + 1:], dtype=np.int64)) * itemsize
    step = max(1, slab_bytes // max(1, inner))
    for lead in itertools.product(*[range(n) for n in shape[:k]]):
        for s in range(0, shape[k], step):
            n = min(step, shape[k] - s)
            yield (tuple(lead) + (s,) + (0,) * (len(shape) - k - 1),
                   (1,) * k + (n,) + tuple(shape[k + 1:]))


def jsonable(x):
    """``x`` with non-finite floats as the strings "inf", "-inf", "nan":
    strict JSON readers (jq, JavaScript) reject bare Infinity/NaN."""
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    return x


def _short(x, n: int = 60) -> str:
    s = repr(x)
    return s if len(s) <= n else s[:n - 3] + "..."


def format_records(records: list[dict], a: str, b: str) -> list[str]:
    """Human-readable lines, one per provider, then a summary line."""
    lines = []
    for r in records:
        st = r["status"]
        if st == "equal":
            what = "equal"
            if r["max_abs"]:
                what += f" within tolerance (max |a-b| {r['max_abs']:.3g})"
        elif st == "differ":
            if r["kind"] in ("distributed", "array"):
                what = (f"DIFFERS: {r['differing']} of {r['elements']} elements, first at "
                        f"{tuple(r['first_index'])}, max |a-b| {_g(r['max_abs'])}, "
                        f"max rel {_g(r['max_rel'])}")
            else:
                what = "DIFFERS" + (f" on rank {r['first_index'][0]}" if r["first_index"] else "")
                what += f": {r['note']}" if r["note"] else ""
        elif st in ("only_a", "only_b"):
            what = f"ONLY IN {'A' if st == 'only_a' else 'B'} ({r['note']})"
        else:
            what = f"INCOMPARABLE: {r['note']}"
        lines.append(f"{r['provider']:<32} {what}")
    nd = sum(not r["equal"] for r in records)
    lines.append(f"{len(records)} provider(s) compared, {nd} differ ({a} vs {b})")
    return lines


def _g(x) -> str:
    return "-" if x is None else f"{x:.3g}"
