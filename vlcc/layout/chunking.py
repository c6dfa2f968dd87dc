"""Fixed-size chunking of a block's flattened (C-order) owned bytes."""

from __future__ import annotations

import numpy as np

DEFAULT_CHUNK_SIZE = 4 << 20  # bytes; large enough that per-chunk metadata is negligible


def chunk_bounds(nbytes: int, chunk_size: int) -> list[tuple[int, int]]:
    """(start, length) of each chunk of a block of ``nbytes`` bytes."""
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    return [(s, min(chunk_size, nbytes - s)) for s in range(0, nbytes, chunk_size)]


def as_bytes(arr: np.ndarray) -> np.ndarray:
    """A flat uint8 view of a C-contiguous array (no copy)."""
    if not arr.flags.c_contiguous:
        raise ValueError("array must be C-contiguous")
    return arr.reshape(-1).view(np.uint8) if arr.size else np.empty(0, np.uint8)
