"""Fixed-size chunking of a block's flattened (C-order) owned bytes."""

from __future__ import annotations

DEFAULT_CHUNK_SIZE = 4 << 20  # bytes; large enough that per-chunk metadata is negligible


def chunk_bounds(nbytes: int, chunk_size: int) -> list[tuple[int, int]]:
    """(start, length) of each chunk of a block of ``nbytes`` bytes."""
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    return [(s, min(chunk_size, nbytes - s)) for s in range(0, nbytes, chunk_size)]
