"""The vlcc version (one place; the package and the C ABI report it)."""

__version__ = "0.1.0"
