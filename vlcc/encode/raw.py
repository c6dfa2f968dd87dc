"""The identity codec: chunks stored as they are."""

from .base import Codec, register_codec


@register_codec
class Raw(Codec):
    codec_id = "raw"

    def encode(self, buf):
        return buf

    def decode(self, buf, nbytes):
        return buf
