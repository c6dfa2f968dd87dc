"""Blosc2: fast blocked compression with shuffle filters; the shuffle unit is
the leaf's element size (``typesize``), which suits smooth float fields."""

from __future__ import annotations

import blosc2
import numpy as np

from ..repo.values import VALUE_DTYPES
from .base import Codec, register_codec

_FILTERS = {"shuffle": blosc2.Filter.SHUFFLE, "bitshuffle": blosc2.Filter.BITSHUFFLE,
            "noshuffle": blosc2.Filter.NOFILTER}


@register_codec
class Blosc2(Codec):
    codec_id = "blosc2"

    def __init__(self, cname: str = "lz4", clevel: int = 5, filter: str = "shuffle",
                 typesize: int = 0):
        if filter not in _FILTERS:
            raise ValueError(f"blosc2 filter must be one of {sorted(_FILTERS)}, not {filter!r}")
        self.cname, self.clevel, self.filter = str(cname), int(clevel), filter
        self.typesize = int(typesize)
        self._codec = getattr(blosc2.Codec, self.cname.upper())

    def for_dtype(self, dtype: str) -> "Blosc2":
        if self.typesize or dtype in VALUE_DTYPES:
            return self
        try:
            ts = np.dtype(dtype).itemsize
        except TypeError:
            return self
        return Blosc2(self.cname, self.clevel, self.filter, ts)

    def encode(self, buf):
        ts = self.typesize or 1
        if len(buf) % ts:
            ts = 1
        return blosc2.compress2(memoryview(buf), codec=self._codec, clevel=self.clevel,
                                filters=[_FILTERS[self.filter]], typesize=ts)

    def decode(self, buf, nbytes):
        return blosc2.decompress2(memoryview(buf))

    def get_config(self) -> dict:
        return {"id": self.codec_id, "cname": self.cname, "clevel": self.clevel,
                "filter": self.filter, "typesize": self.typesize}
