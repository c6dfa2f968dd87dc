"""Coalescing of small leaves into one per-rank *pack* (docs/format.md,
section 3.1).

Thousands of tiny providers (1 KiB arrays, pickled values) would otherwise
cost one BP5 variable, one chunk entry, one hash and one offer each. Before
chunking, every leaf of ``0 < nbytes < threshold`` (and no larger than one
chunk) is copied, in capture order, into one contiguous buffer that is
stored as the ordinary leaf ``PACK_NAME`` of the rank index: chunked, hashed,
deduplicated and encoded like any other leaf. Each packed leaf keeps its own
manifest block, which records where its bytes lie inside the pack.

The gather is one ``np.concatenate(..., out=)``: 10,000 × 1 KiB in 1.8 ms
here, as fast as a copy loop can be (a Numba kernel would first have to build
a typed list of the 10,000 buffers, which costs more than the copy)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..repo.checksums import chunk_hash, digest_of
from ..state.provider import Leaf
from ..repo.records import Kind

# Not a valid provider name (names start with a letter, digit or '_'), so it
# never collides with a registered provider; a legal ADIOS2 variable name.
PACK_NAME = ".pack"
DEFAULT_COALESCE_BELOW = 64 << 10


@dataclass
class Packed:
    """The pack of one rank and the leaves it replaced."""
    pack: Leaf | None                            # None: nothing was small enough
    offsets: dict = field(default_factory=dict)  # leaf name -> byte offset in the pack
    digests: dict = field(default_factory=dict)  # leaf name -> block digest
    leaves: list = field(default_factory=list)   # the packed leaves, in pack order


def packable(leaf: Leaf, threshold: int, chunk_size: int) -> bool:
    n = 0 if leaf.data is None else int(leaf.data.size)
    return 0 < n < threshold and n <= chunk_size


def coalesce(leaves: list[Leaf], threshold: int, chunk_size: int,
             exclude=None) -> tuple[list[Leaf], Packed]:
    """Split ``leaves`` into the ones stored on their own and one pack leaf
    (appended last) holding every small leaf's bytes back to back. Leaves
    for which ``exclude(leaf)`` is true (e.g. with their own codec) stay apart.

    A packed leaf's block digest is ``digest_of([xxh3_128(bytes)])`` — the
    digest the leaf would have if stored on its own as one chunk — so
    replication detection and version diffs do not depend on coalescing."""
    if threshold <= 0:
        return list(leaves), Packed(None)
    small = [l for l in leaves if packable(l, threshold, chunk_size)
             and not (exclude is not None and exclude(l))]
    if len(small) < 2:     # one small leaf gains nothing from a pack
        return list(leaves), Packed(None)
    smallset = {id(l) for l in small}
    rest = [l for l in leaves if id(l) not in smallset]
    total = sum(int(l.data.size) for l in small)
    buf = np.empty(total, np.uint8)
    np.concatenate([l.data for l in small], out=buf)
    offsets, digests = {}, {}
    off = 0
    for l in small:
        n = int(l.data.size)
        offsets[l.name] = off
        digests[l.name] = digest_of([chunk_hash(buf[off:off + n])])
        off += n
    pack = Leaf(PACK_NAME, Kind.ARRAY, "|u1", (total,), data=buf)
    return rest + [pack], Packed(pack, offsets, digests, small)
