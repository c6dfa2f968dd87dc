"""``vlcc.Repository``: non-collective access to a vlcc repository (no MPI
needed): the catalog (versions, refs, lineage) plus reading stored data,
verifying it, and gc/prune/du. The Checkpointer uses it on rank 0 for
everything that touches metadata."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .engine.buffers import available_memory
from .errors import ArgumentError, StorageError, VlccError
from .repo import gc as _gc
from .repo.catalog import Catalog
from .repo.manifest import Version
from .restore import verify as _verify
from .restore.reader import VersionReader
from .repo.records import Kind

if TYPE_CHECKING:
    from .repo.doctor import DoctorReport


def _alloc(shape: tuple, dtype: str, what: str) -> np.ndarray:
    """The array a read returns, or a clear error when it cannot fit in memory
    (read a distributed provider in parts with ``box=``)."""
    n = math.prod(shape) * np.dtype(dtype).itemsize
    avail = available_memory()
    if n > max(avail, 1 << 30):
        raise StorageError(f"{what}: {n} bytes do not fit in the {avail} bytes of memory "
                           f"available (read it in parts with box=(offset, shape))")
    try:
        return np.empty(shape, np.dtype(dtype))
    except MemoryError:
        raise StorageError(f"{what}: cannot allocate {n} bytes (read it in parts with box=)") from None


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _check_read_args(name, rank, box) -> None:
    if not isinstance(name, str):
        raise ArgumentError(f"read: provider name must be a str, got {type(name).__name__}")
    if rank is not None and not _is_int(rank):
        raise ArgumentError(f"read: rank must be an int or None, got {rank!r} ({type(rank).__name__})")
    if box is not None:
        try:
            off, shape = box
            ok = all(_is_int(i) for i in (*off, *shape))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ArgumentError(f"read: box must be (offset, shape), two sequences of ints, "
                                f"got {box!r}")


class Repository(Catalog):
    """A vlcc repository on disk, opened for inspection.

    >>> repo = Repository("runs/heat")
    >>> v = repo.log()[0]; u = repo.read(v, "heat/u")
    """

    def __repr__(self) -> str:
        return f"vlcc.Repository({self.path!r})"

    # -- data ---------------------------------------------------------------
    def read(self, version: "Version | str", name: str, rank: int | None = None, *,
             box: "tuple[tuple[int, ...], tuple[int, ...]] | None" = None,
             allow_pickle: bool = False):
        """A provider's stored content: the global array of a distributed
        provider, rank ``rank``'s array/value of a per-rank one (``rank`` may be
        omitted when all ranks stored the same bytes). ``box=(offset, shape)``
        reads only that sub-box of a distributed provider (only the chunks it
        needs), so arrays larger than memory can be streamed. A value stored as a
        pickle (formats 1-3, or written with ``allow_pickle=True``) raises
        UnsafeValueError unless ``allow_pickle=True``: unpickling runs code
        chosen by whoever wrote the repository."""
        _check_read_args(name, rank, box)
        v = self.resolve(version)
        r = VersionReader(self.layout, v.manifest, allow_pickle=allow_pickle)
        try:
            e = r.entry(name)
            if e["kind"] == Kind.DERIVED:
                raise VlccError(f"provider {name!r} of version {v.id} is derived (recipe "
                                f"{e.get('recipe')!r} of {e.get('inputs')!r}): no bytes are stored; "
                                f"read its inputs and recompute it, or restore with a Checkpointer")
            if e["kind"] == Kind.DISTRIBUTED:
                gshape = tuple(e["global_shape"])
                off, shape = ((0,) * len(gshape), gshape) if box is None else map(tuple, box)
                if len(off) != len(gshape) or len(shape) != len(gshape) or any(
                        o < 0 or n < 0 or o + n > g for o, n, g in zip(off, shape, gshape)):
                    raise ArgumentError(f"box {box!r} does not lie inside provider {name!r} of "
                                    f"version {v.id} (global shape {gshape})")
                if box is None:   # every rank's block, checked before allocating the whole
                    for k in range(r.nranks):
                        r.block(name, k)
                out = _alloc(shape, e["dtype"], f"provider {name!r} of version {v.id}")
                return r.read_box(name, out, off) if out.size else out
            if box is not None:
                raise ArgumentError(f"box= applies to distributed providers; {name!r} of version "
                                f"{v.id} is {e['kind']!r}")
            nblocks = r.nblocks(name)
            if rank is None:
                if not e.get("replicated") and nblocks > 1:
                    raise VlccError(f"provider {name!r} of version {v.id} differs per rank "
                                    f"(written on {nblocks} ranks): pass rank=0..{nblocks - 1}")
                rank = 0
            if not 0 <= rank < nblocks:
                raise ArgumentError(f"provider {name!r} of version {v.id} has ranks 0..{nblocks - 1}, "
                                f"not {rank}")
            if e["kind"] == Kind.VALUE:
                return r.read_value(name, rank, nblocks)
            out = _alloc(tuple(r.block(name, rank)["shape"]), e["dtype"],
                         f"provider {name!r} of version {v.id}, rank {rank}")
            return r.read_array(name, out, rank, nblocks)
        finally:
            r.close()

    def blocks(self, version: "Version | str", name: str) -> list[dict]:
        """How provider ``name`` of ``version`` is stored: one dict per rank
        (rank, shape, nbytes, digest; offset of a distributed block; pack of a
        coalesced one). Format 2 reads them from the rank indexes."""
        v = self.resolve(version)
        r = VersionReader(self.layout, v.manifest)
        try:
            return [r.block(name, k) for k in range(r.nblocks(name))]
        finally:
            r.close()

    def verify(self, version: "Version | str | None" = None, *, deep: bool = False) -> dict:
        """Check every checksum (manifests, indexes, every chunk, block
        digests) of one version or, when ``version`` is None, of all (and
        every branch and tag). One version: raises CorruptionError at the first
        problem, naming version, provider, rank and file. All: checks every
        version, then raises one CorruptionError listing each damaged version
        and ref (attributes ``damaged``, ``damaged_refs``, ``intact``). Returns
        counts (for all, also the ``intact`` ids). ``deep``: also compare every stored copy of
        each chunk hash used in several places byte for byte (docs/format.md,
        section 10, "Hash collisions")."""
        return _verify.verify(self, version, deep=deep)

    # -- space ---------------------------------------------------------------
    def gc(self, *, dry_run: bool = False, **kw) -> dict:
        """Delete data no live version references (see vlcc/repo/gc.py)."""
        return _gc.gc(self.path, dry_run=dry_run, **kw)

    def prune(self, *, keep_last: int, branches: list[str] | None = None, dry_run: bool = False,
              **kw) -> dict:
        """Remove versions beyond the ``keep_last`` newest of each branch (tags stay)."""
        return _gc.prune(self.path, keep_last=keep_last, branches=branches, dry_run=dry_run, **kw)

    def doctor(self, repair: bool = False, **kw) -> "DoctorReport":
        """Find leftovers of crashed jobs — stale locks (dead holders),
        orphan data directories (no manifest, no live writer), temp files,
        node-local tiers of dead jobs — and dangling refs; with ``repair``
        remove all but the refs (reported only). Returns a DoctorReport
        (``ok`` when no problem remains; see vlcc/repo/doctor.py)."""
        from .repo.doctor import doctor
        return doctor(self.layout, repair=repair, bad_refs=_verify.check_refs(self), **kw)

    def du(self) -> dict:
        """Logical vs stored bytes per version and branch."""
        return _gc.du(self.path)
