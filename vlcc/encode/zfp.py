"""zfp (through the PyPI package ``zfpy``): LOSSY compression of float32 /
float64 chunks in fixed-accuracy mode, i.e. with an absolute error bound
``tolerance``. Never a default: it is used only when a provider asks for it,
``compress={"id": "zfp", "tolerance": 1e-6}`` (docs/format.md, section 10).

How it is applied (vlcc/io/rankwrite.py):

* only to leaves of dtype float32/float64 in native byte order; any other
  leaf (integers, bytes, pickled values, big-endian floats) of a provider that
  asked for zfp is stored **raw** (lossless), see ``for_dtype``;
* only to chunks holding whole elements (chunk start and length multiples of
  the element size), all finite; other chunks are stored raw;
* every encoded chunk is decoded at write time and checked against the bound
  (max |decoded - original| <= tolerance); the stored hash is the xxh3_128 of
  the DECODED bytes, so restore and ``verify`` check integrity exactly as for
  lossless chunks, and dedup keys such a chunk on what a restore returns;
* as with every codec, a chunk that does not shrink is stored raw.

The chunk is compressed as a 1-D array (the chunk is a byte range of the
block's flattened C-order bytes). The index records the config per chunk:
``{"id": "zfp", "tolerance": ..., "dtype": ...}``."""

from __future__ import annotations

import math

import numpy as np
import zfpy

from ..errors import ArgumentError as VlccError  # argument errors (EINVAL)
from .base import Codec, register_codec
from .raw import Raw

_FLOATS = ("float32", "float64")


@register_codec
class Zfp(Codec):
    codec_id = "zfp"
    lossless = False

    def __init__(self, tolerance: float, dtype: str = ""):
        try:
            tol = float(tolerance)
        except (TypeError, ValueError):
            raise VlccError(f"zfp: tolerance must be a number, not {tolerance!r}") from None
        if not (math.isfinite(tol) and tol > 0):
            raise VlccError(f"zfp: tolerance must be a finite absolute error bound > 0, "
                            f"not {tolerance!r}")
        self.tolerance = tol
        self.dtype = str(dtype)
        self._dt = None
        if self.dtype:
            dt = np.dtype(self.dtype)
            if dt.name not in _FLOATS or not dt.isnative:
                raise VlccError(f"zfp applies to native float32/float64 data, not {self.dtype!r}")
            self._dt = dt

    def for_dtype(self, dtype: str) -> Codec:
        """zfp for native float32/float64 leaves; raw (lossless) for any other leaf."""
        if self._dt is not None:
            return self
        try:
            dt = np.dtype(dtype)
        except TypeError:
            return Raw()
        if dt.name not in _FLOATS or not dt.isnative:
            return Raw()
        return Zfp(self.tolerance, dt.str)

    def accepts(self, start: int, length: int) -> bool:
        """Whether the chunk ``[start, start+length)`` of a block holds whole elements."""
        if self._dt is None or length <= 0:
            return False
        isz = self._dt.itemsize
        return start % isz == 0 and length % isz == 0

    def _values(self, buf) -> np.ndarray:
        if self._dt is None:
            raise VlccError("zfp: the element dtype is unknown (the codec applies to float leaves)")
        mv = memoryview(buf).cast("B")
        if len(mv) % self._dt.itemsize:
            raise VlccError(f"zfp: {len(mv)} bytes are not whole {self._dt.name} elements")
        return np.frombuffer(mv, self._dt)

    def encode(self, buf):
        return zfpy.compress_numpy(self._values(buf), tolerance=self.tolerance)

    def decode(self, buf, nbytes):
        out = zfpy.decompress_numpy(bytes(memoryview(buf).cast("B")))
        out = np.ascontiguousarray(out).reshape(-1).view(np.uint8)
        if out.size != nbytes:
            raise VlccError(f"zfp: decoded {out.size} bytes, expected {nbytes}")
        return out

    def encode_lossy(self, buf, start: int = 0):
        """``(stored, decoded)`` bytes of a chunk starting at byte ``start`` of
        its block, or None when the chunk must be stored raw (not whole
        elements, non-finite values, or the bound not met)."""
        n = len(memoryview(buf).cast("B"))
        if not self.accepts(start, n):
            return None
        vals = self._values(buf)
        if not np.isfinite(vals).all():
            return None
        enc = self.encode(buf)
        dec = self.decode(enc, n)
        err = np.abs(dec.view(self._dt).astype(np.float64) - vals.astype(np.float64))
        if err.size and not float(err.max()) <= self.tolerance:
            return None
        return enc, dec

    def get_config(self) -> dict:
        return {"id": self.codec_id, "tolerance": self.tolerance, "dtype": self.dtype}
