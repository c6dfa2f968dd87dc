"""Content hashes. One 128-bit xxh3 hash per chunk serves both integrity
(checked on restore and verify) and identity (dedup of equal chunks)."""

from __future__ import annotations

import xxhash



def chunk_hash(buf) -> str:
    """Hex xxh3_128 of a bytes-like object (no copy for contiguous buffers)."""
    return xxhash.xxh3_128_hexdigest(buf)


def digest_of(hashes: list[str]) -> str:
    """Digest of a block: the hash of its chunk hashes in order. Two blocks with
    the same digest hold the same bytes (replicated data across ranks)."""
    h = xxhash.xxh3_128()
    for x in hashes:
        h.update(x.encode())
    return h.hexdigest()


def text_hash(text: str) -> str:
    return xxhash.xxh3_128_hexdigest(text.encode())
