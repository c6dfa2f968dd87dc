"""Encode: codecs applied to chunks before they reach the data files.
One codec per file; the index records each chunk's codec config so old
versions decode after defaults change. blosc2, zstd and the lossy zfp codec
register themselves when their packages are installed (the ``compress`` extra)."""

from .base import Codec, get_codec, known_codecs, register_codec  # noqa: F401
from . import raw  # noqa: F401  (registers "raw")

try:
    from . import zstd  # noqa: F401
except ImportError:
    pass
try:
    from . import blosc2  # noqa: F401
except ImportError:
    pass
try:
    from . import zfp  # noqa: F401  (lossy; used only when a provider asks for it)
except ImportError:
    pass
