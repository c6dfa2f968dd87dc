"""Element-wise comparison with tolerances, shared by ``diff`` and ``compare``.

Two elements differ when ``|a - b| > atol + rtol * |b|`` (numpy.isclose, with
``b`` the reference side); NaN equals NaN at the same place. Results of
successive pieces (slabs) merge with ``Tally.add`` so arrays of any size are
compared piece by piece."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Tally:
    """Running result of comparing one provider."""

    elements: int = 0
    differing: int = 0
    max_abs: float | None = 0.0
    max_rel: float | None = 0.0
    first_index: tuple | None = None     # global index of the first differing element (C order)

    def add(self, a: np.ndarray, b: np.ndarray, rtol: float, atol: float, offset=None) -> None:
        """Compare piece ``a`` with reference piece ``b`` (same shape), which
        starts at global index ``offset`` (default: the origin)."""
        mask, absd, rel = differ(a, b, rtol, atol)
        self.elements += int(mask.size)
        n = int(np.count_nonzero(mask))
        if absd is None:
            self.max_abs = self.max_rel = None
        elif absd.size and self.max_abs is not None:
            self.max_abs = max(self.max_abs, float(absd.max()))
            self.max_rel = max(self.max_rel, float(rel.max()))
        if n and self.first_index is None:
            local = np.unravel_index(int(np.argmax(mask.reshape(-1))), mask.shape) if mask.ndim else ()
            off = offset if offset is not None else (0,) * mask.ndim
            self.first_index = tuple(int(i) + int(o) for i, o in zip(local, off))
        self.differing += n


def differ(a: np.ndarray, b: np.ndarray, rtol: float, atol: float):
    """(mask of differing elements, |a-b| or None, relative difference or None)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"shapes {a.shape} and {b.shape} differ")
    numeric = all(x.dtype.kind in "biufc" for x in (a, b))
    if not numeric:
        # Strings, structured records: equality only.
        return np.asarray(a != b), None, None
    if all(x.dtype.kind in "biu" for x in (a, b)) and not rtol and not atol:
        mask = a != b
        absd = np.abs(a.astype(np.float64) - b.astype(np.float64))
    else:
        wide = np.result_type(a.dtype, b.dtype, np.float64)
        x, y = a.astype(wide, copy=False), b.astype(wide, copy=False)
        with np.errstate(invalid="ignore", over="ignore"):
            absd = np.abs(x - y).astype(np.float64, copy=False)
        nan_x, nan_y = np.isnan(x), np.isnan(y)
        both = nan_x & nan_y
        one = nan_x ^ nan_y
        if both.any() or one.any():
            absd = np.where(both, 0.0, np.where(one, np.inf, absd))
        # Same infinity on both sides: inf - inf is nan, yet they are equal.
        same_inf = np.isinf(x) & (x == y)
        if same_inf.any():
            absd = np.where(same_inf, 0.0, absd)
        with np.errstate(invalid="ignore"):
            mask = absd > atol + rtol * np.abs(y)
        b = y
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.abs(b).astype(np.float64, copy=False)
        rel = np.where(absd == 0, 0.0, absd / np.where(mag == 0, 0.0, mag))
    rel = np.where(np.isnan(rel), np.inf, rel)
    return np.asarray(mask), np.asarray(absd, dtype=np.float64), np.asarray(rel, dtype=np.float64)


def values_equal(a, b, rtol: float, atol: float) -> tuple[bool, float | None]:
    """Compare two stored values (numbers, arrays, containers of them) by value;
    numbers within the tolerances. Returns (equal, max |a-b| or None)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return False, None
        res = [values_equal(a[k], b[k], rtol, atol) for k in a]
        return all(r[0] for r in res), _max([r[1] for r in res])
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if type(a) is not type(b) or len(a) != len(b):
            return False, None
        res = [values_equal(x, y, rtol, atol) for x, y in zip(a, b)]
        return all(r[0] for r in res), _max([r[1] for r in res])
    num = (int, float, complex, np.number, np.bool_, np.ndarray)
    if isinstance(a, num) and isinstance(b, num):
        x, y = np.asarray(a), np.asarray(b)
        if x.shape != y.shape or x.dtype.kind not in "biufc" or y.dtype.kind not in "biufc":
            return bool(np.array_equal(x, y)), None
        mask, absd, _ = differ(x, y, rtol, atol)
        return not bool(mask.any()), float(absd.max()) if absd.size else 0.0
    try:
        return bool(a == b), None
    except Exception:   # objects whose == is not a bool (e.g. element-wise)
        return False, None


def _max(xs):
    xs = [x for x in xs if x is not None]
    return max(xs) if xs else None
