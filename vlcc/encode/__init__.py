"""Encode: codecs applied to chunks before they reach the data files.
One codec per file; the index records each chunk's codec config so old
versions decode after defaults change. blosc2, zstd and the lossy zfp codec
register themselves at first use when their packages are installed (the
``compress`` extra; base.get_codec imports them)."""

from .base import Codec, get_codec, known_codecs, register_codec  # noqa: F401
from . import raw  # noqa: F401  (registers "raw"; zstd, blosc2, zfp register at first use)
