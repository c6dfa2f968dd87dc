"""Strided copies (``dst[...] = src``) at memory speed whatever the relative
alignment of the two buffers.

Why: numpy copies each contiguous run of a strided assignment with
``memmove``; glibc moves runs between a few KiB and its non-temporal
threshold (here ~0.5 MiB) with ``rep movsb``, which on some CPUs (measured:
AMD EPYC, ERMS/FSRM) runs 4–6× slower when source and destination are not
equally aligned modulo 32. A restore copies pieces out of a page-aligned
file mapping into an application array that malloc placed 16 bytes past a
page: 4 KiB rows of 128 MiB took 50 ms instead of 13 ms, and 256 KiB
contiguous slices 76 ms instead of 13 ms. ``assign`` keeps the direct copy
when the alignments agree and otherwise goes through a scratch buffer
placed at the destination's alignment (one contiguous copy in, one aligned
strided copy out): 20 ms for the same 128 MiB."""

from __future__ import annotations

import threading

import numpy as np

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


def assign(dst: np.ndarray, src: np.ndarray) -> None:
    """``dst[...] = src`` (same shape and dtype; ``src`` may be read-only, e.g.
    a mapped file), through an aligned scratch buffer in slabs of whole
    leading-axis rows when the direct copy would be slow (see the module doc).
    One contiguous run each (a whole array) is copied directly: a long copy
    is past glibc's non-temporal threshold, where alignment does not matter."""
    row = int(np.prod(src.shape[1:], dtype=np.int64)) * src.itemsize if src.ndim else 0
    if (src.ndim < 2 or row >= _SCRATCH or (dst.flags.c_contiguous and src.flags.c_contiguous)
            or not src.flags.c_contiguous or not misaligned(dst, src)):
        dst[...] = src
        return
    step = max(1, _SCRATCH // row)
    for i in range(0, src.shape[0], step):
        d, s = dst[i:i + step], src[i:i + step]
        t = _scratch(s.nbytes, d.ctypes.data).view(s.dtype).reshape(s.shape)
        np.copyto(t, s)          # one contiguous copy of ~1 MiB
        d[...] = t               # strided, now equally aligned


__all__ = ["assign", "misaligned"]
