"""Dirty-chunk detection: one fused pass that compares the captured bytes with
the copy kept from the previous capture, chunk by chunk, and refreshes that
copy where a chunk changed. Only dirty chunks need hashing afterwards.

The comparison runs on 8-byte words in blocks of 512 words: the inner loop is
a branch-free xor/or reduction that LLVM vectorizes; one test per block lets a
dirty chunk stop early."""

from __future__ import annotations

import numpy as np
from numba import njit

_BLOCK = 512  # words per early-exit test


@njit(nogil=True, cache=True)
def _differs(a, b, s, e):
    """True when byte ranges a[s:e] and b[s:e] differ (uint8 arrays)."""
    # word-aligned body
    ws = (s + 7) // 8
    we = e // 8
    for i in range(s, min(ws * 8, e)):
        if a[i] != b[i]:
            return True
    if we > ws:
        a64 = a[ws * 8:we * 8].view(np.uint64)
        b64 = b[ws * 8:we * 8].view(np.uint64)
        n = we - ws
        i = 0
        while i < n:
            j = min(i + _BLOCK, n)
            acc = np.uint64(0)
            for k in range(i, j):
                acc |= a64[k] ^ b64[k]
            if acc != 0:
                return True
            i = j
        tail = we * 8
    else:
        tail = max(ws * 8, s)
    for i in range(max(tail, s), e):
        if a[i] != b[i]:
            return True
    return False


@njit(nogil=True, cache=True)
def compare_update(cur, prev, chunk_size, dirty):
    """Mark ``dirty[c]`` for every chunk ``c`` of ``cur`` that differs from
    ``prev`` and copy it into ``prev`` (both flat uint8, same size). Returns
    the number of dirty chunks."""
    n = cur.size
    nd = 0
    for c in range(dirty.size):
        s = c * chunk_size
        e = min(s + chunk_size, n)
        if _differs(cur, prev, s, e):
            dirty[c] = True
            prev[s:e] = cur[s:e]
            nd += 1
        else:
            dirty[c] = False
    return nd


def dirty_chunks(cur: np.ndarray, prev: np.ndarray, chunk_size: int, *, update: bool = True) -> np.ndarray:
    """Boolean mask of the chunks of ``cur`` that differ from ``prev`` (flat
    uint8 arrays of equal size). With ``update`` (default) ``prev`` is made
    equal to ``cur`` in the same pass."""
    if cur.size != prev.size:
        raise ValueError(f"sizes differ: {cur.size} vs {prev.size}")
    nch = -(-cur.size // chunk_size) if cur.size else 0
    mask = np.zeros(nch, dtype=np.bool_)
    if nch == 0:
        return mask
    if update:
        compare_update(cur, prev, int(chunk_size), mask)
    else:
        compare_update(cur, prev.copy(), int(chunk_size), mask)
    return mask


@njit(nogil=True, cache=True)
def _compare_update_ranges(cur, prev, starts, lengths, dirty):
    nd = 0
    for c in range(dirty.size):
        s = starts[c]
        e = s + lengths[c]
        if _differs(cur, prev, s, e):
            dirty[c] = True
            prev[s:e] = cur[s:e]
            nd += 1
        else:
            dirty[c] = False
    return nd


def dirty_ranges(cur: np.ndarray, prev: np.ndarray, bounds) -> np.ndarray:
    """``dirty_chunks`` for chunks of varying size (global-grid tiles,
    layout/tiles.py): ``bounds`` lists (start, length) per chunk. ``prev`` is
    made equal to ``cur`` in the same pass."""
    if cur.size != prev.size:
        raise ValueError(f"sizes differ: {cur.size} vs {prev.size}")
    b = np.asarray(bounds, dtype=np.int64).reshape(-1, 2)
    mask = np.zeros(len(b), dtype=np.bool_)
    if len(b):
        _compare_update_ranges(cur, prev, np.ascontiguousarray(b[:, 0]),
                               np.ascontiguousarray(b[:, 1]), mask)
    return mask
