"""Strided copies (``dst[...] = src``) at memory speed whatever the relative
alignment of the two buffers.

Why: numpy copies each contiguous run of a strided assignment with
``memmove``; glibc moves runs between a few KiB and its non-temporal
threshold (here ~0.5 MiB) with ``rep movsb``, which on some CPUs (measured:
AMD EPYC, ERMS/FSRM) runs 4–6× slower when the destination sits 8–24 bytes
(mod 64) past the source. A restore copies pieces out of a page-aligned
file mapping into an application array that malloc placed 16 bytes past a
page: 4 KiB rows of 128 MiB took 50 ms instead of 13 ms, and 256 KiB
contiguous slices 76 ms instead of 13 ms. ``assign`` keeps numpy's copy
when the alignments agree; otherwise it copies whole rows with a Numba
loop (LLVM vectorizes it with unaligned loads and stores, no ``rep movsb``):
16 ms for the same 128 MiB, against 20–23 ms through a scratch buffer
placed at the destination's alignment (one contiguous copy in, one aligned
strided copy out), which stays for layouts the loop does not take."""

from __future__ import annotations

import threading

import numpy as np
from numba import njit

# Relative alignment that rep movsb needs to run at full speed (AVX2: 32;
# 64 covers cache lines and AVX-512 too).
ALIGN = 64
# Runs shorter than this are moved by glibc's vector loop, which does not care.
SHORT_RUN = 2048
_SCRATCH = 1 << 20
_local = threading.local()


def _scratch(nbytes: int, like: int) -> np.ndarray:
    """``nbytes`` of thread-local scratch whose address is ``like`` modulo ALIGN."""
    buf = getattr(_local, "buf", None)
    if buf is None or buf.size < nbytes + ALIGN:
        buf = _local.buf = np.empty(max(nbytes, _SCRATCH) + ALIGN, np.uint8)
    o = (like - buf.ctypes.data) % ALIGN
    return buf[o:o + nbytes]


def _run_bytes(a: np.ndarray) -> int:
    """Bytes of the innermost contiguous run of ``a`` (numpy's memmove unit)."""
    run = a.itemsize
    for n, s in zip(reversed(a.shape), reversed(a.strides)):
        if s != run:
            break
        run *= n
    return run


def misaligned(dst: np.ndarray, src: np.ndarray) -> bool:
    """Would ``dst[...] = src`` move runs with rep movsb at unequal alignment?"""
    if dst.size == 0 or src.size == 0:
        return False
    if (dst.ctypes.data - src.ctypes.data) % ALIGN == 0 and all(
            s % ALIGN == 0 for s in dst.strides[:-1] + src.strides[:-1]):
        return False
    return min(_run_bytes(dst), _run_bytes(src)) >= SHORT_RUN


@njit(nogil=True, boundscheck=False, cache=True)
def _rows(dst, src):      # pragma: no cover - compiled
    for i in range(src.shape[0]):
        for j in range(src.shape[1]):
            dst[i, j] = src[i, j]


def _byte_rows(a: np.ndarray) -> np.ndarray | None:
    """``a`` as a 2-D uint8 array of whole rows (its leading axes merged, its
    last axis contiguous and counted in bytes), or None when they do not merge."""
    if a.ndim < 2 or a.strides[-1] != a.itemsize:
        return None
    b = a.view(np.uint8)
    if b.ndim > 2:
        try:
            b = b.reshape((-1, b.shape[-1]), copy=False)
        except ValueError:      # leading axes not evenly spaced
            return None
    return b


def assign(dst: np.ndarray, src: np.ndarray) -> None:
    """``dst[...] = src`` (same shape and dtype; ``src`` may be read-only, e.g.
    a mapped file), by a row loop or through an aligned scratch buffer when
    numpy's copy would be slow (see the module doc). One contiguous run each
    (whole arrays) is copied by numpy: a long copy is past glibc's
    non-temporal threshold, where alignment does not matter."""
    if (src.ndim < 2 or (dst.flags.c_contiguous and src.flags.c_contiguous)
            or not misaligned(dst, src)):
        dst[...] = src
        return
    d2, s2 = _byte_rows(dst), _byte_rows(src)
    if d2 is not None and s2 is not None and d2.shape == s2.shape:
        _rows(d2, s2)
        return
    row = int(np.prod(src.shape[1:], dtype=np.int64)) * src.itemsize
    if not src.flags.c_contiguous or row >= _SCRATCH:
        dst[...] = src
        return
    step = max(1, _SCRATCH // row)
    for i in range(0, src.shape[0], step):
        d, s = dst[i:i + step], src[i:i + step]
        t = _scratch(s.nbytes, d.ctypes.data).view(s.dtype).reshape(s.shape)
        np.copyto(t, s)          # one contiguous copy of ~1 MiB
        d[...] = t               # strided, now equally aligned


__all__ = ["assign", "misaligned"]
