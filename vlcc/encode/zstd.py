"""zstandard: general-purpose lossless compression (levels 1..22)."""

from __future__ import annotations

import zstandard

from .base import Codec, register_codec


@register_codec
class Zstd(Codec):
    codec_id = "zstd"

    def __init__(self, level: int = 3):
        self.level = int(level)
        self._c = zstandard.ZstdCompressor(level=self.level)
        self._d = zstandard.ZstdDecompressor()

    def encode(self, buf):
        return self._c.compress(memoryview(buf))

    def decode(self, buf, nbytes):
        return self._d.decompress(memoryview(buf), max_output_size=nbytes)

    def get_config(self) -> dict:
        return {"id": self.codec_id, "level": self.level}
