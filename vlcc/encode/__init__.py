"""Encode: codecs applied to chunks before they reach the data files.
One codec per file; the manifest records each codec's config so old versions
decode after defaults change."""

from .base import Codec, get_codec, register_codec  # noqa: F401
from . import raw  # noqa: F401  (registers "raw")
