"""The collective restore (docs/architecture.md, "One restore"), all-or-nothing
for application memory:

rank 0 resolves the spec → manifest (bcast); every rank checks its registered
providers against it; phase 1 ("read and check"): every rank reads what its
own providers need (N→M aware) from the fastest source — the memory tier if
every rank holds the version there, else disk — into staging memory, verifying
every checksum, decoding, unpickling and checking shapes, dtypes and
writability, without touching application memory (agree); phase 2 ("apply"):
copy the staged bytes into the providers and run their set/restore/on_restore
callbacks (agree). A failure in phase 1 on any rank leaves every provider on
every rank untouched. A callback that fails in phase 2 cannot be undone.

``atomic=False`` reads straight into the application's arrays (no staging
copy, no doubled memory; the structural checks still come first, but a damaged
chunk found while reading leaves the providers read before it restored);
``atomic=None`` stages unless staging would exceed half the available memory."""

from __future__ import annotations

import numpy as np

from ..commit.checkpoint import progress
from ..commit.manifest import provisional
from ..comm.protocol import agree, all_true, allgather, forwards, from_root, root_only
from ..engine.resilience.recover import complete, recover
from ..repo.nodelocal import NODELOCAL, read_record
from ..commit.session import Session
from ..errors import MissingProviderError, ProviderError, ShapeMismatchError, StorageError, VlccError
from ..repo.manifest import Version, stored_entry
from ..repo.records import Kind
from ..state.array import ArrayProvider
from .prefetch import prefetch_upcoming
from .profile import inside, stage
from .sources import DiskSource, MemorySource
from .staging import Stager, stage_fits, staging_bytes, warn_direct


@forwards
def _coll(op, comm, fn):
    """A collective of comm/protocol.py; its local part ``fn`` profiled apart."""
    with stage("collectives"):
        return op(comm, inside("planning", fn))


def restore(s: Session, version, strict: bool, atomic: bool | None = True,
            allow_pickle: bool | None = None) -> Version:
    with stage("planning"):
        return _restore(s, version, strict, atomic, allow_pickle)


def _restore(s: Session, version, strict: bool, atomic: bool | None,
             allow_pickle: bool | None) -> Version:
    eng = s.engine
    if allow_pickle is None:
        allow_pickle = s.state.allow_pickle
    spec = version.id if isinstance(version, Version) else version
    pend = {p.vid: p for p in eng.pending}
    target = None
    if spec in (None, "latest") and eng.pending and eng.pending[-1].branch == s.branch:
        target = eng.pending[-1].vid
    elif isinstance(spec, str) and spec in pend:
        target = spec
    if target is not None:
        # A pending version: from memory if every rank still holds it there,
        # else once it is durable (the pending lists are the same on all ranks).
        if _coll(all_true, s.comm, lambda: fits(s, eng.memory.get(target))):
            return _from_memory(s, target, Version.from_manifest(provisional(pend[target], s.size)),
                                strict, allow_pickle)
        progress(s, block=True)
        spec = target

    def resolve():
        latest = spec in (None, "latest")
        return s.catalog.resolve(spec, branch=s.branch if latest else None).manifest
    doc = _coll(root_only, s.comm, resolve)
    v = Version.from_manifest(doc, s.paths.root)
    eng.wait_prefetch(v.id)
    if _coll(all_true, s.comm, lambda: fits(s, eng.memory.get(v.id))):
        return _from_memory(s, v.id, v, strict, allow_pickle)
    eng.memory.record_access(v.id, hit=False)
    complete_from_node_local(s, doc)
    if atomic is None:
        # One allgather: every rank stages, or none does (a mixed restore would
        # be neither all-or-nothing nor documented).
        atomic = all(_coll(allgather, s.comm, lambda: stage_fits(s.state.providers.values(),
                                                          eng.memory.pool_bytes)))
        if not atomic:
            warn_direct(f"version {v.id}", staging_bytes(s.state.providers.values()))
    offsets = {n: p.offset for n, p in s.state.providers.items()
               if isinstance(p, ArrayProvider) and p.kind == Kind.DISTRIBUTED}
    src = DiskSource(s.paths, doc, rank=s.rank, nranks=s.size, offsets=offsets,
                     faster=eng.faster_layouts, allow_pickle=allow_pickle)
    read = Stager(src, bool(atomic), eng.memory)

    def check():
        check_stored(s, src.stored, src.where, strict, v.nranks)

    def check_and_stage():
        check()
        return _stage(s, src, read)
    try:
        if atomic:
            staged = _coll(agree, s.comm, check_and_stage)
        else:
            _coll(agree, s.comm, check)        # structural checks before any byte lands
            staged = _coll(agree, s.comm, lambda: _stage(s, src, read))
        _coll(agree, s.comm, lambda: _apply(s, src, staged))
    finally:
        read.release()
        src.close()
    s.writer.restored_from(v.id, src.reader.subranges)
    return _restored(s, v)


def complete_from_node_local(s: Session, doc: dict) -> dict | None:
    """Collective: a version kept on node-local tiers only (not every rank's
    files on the persistent tier) is first made complete there from the node
    stores, lost nodes rebuilt from their redundancy (engine/resilience/recover.py).
    The node-local directory: the configured one when given (or written to),
    else the one the writer recorded (``nodelocal.json``)."""
    # no record: the version was never node-local only (the record is written
    # before such a version commits), so missing files are damage, reported
    # as such by the read that follows
    def node_local_only():     # (the record first: one stat for an ordinary version)
        rec = read_record(s.paths, doc["id"], NODELOCAL)
        return None if rec is None or complete(s.paths, doc) else rec
    mark = from_root(s.comm, node_local_only)
    if mark is None:
        return None
    cfg = s.engine.cfg
    own = cfg.local_explicit or s.engine.store is not None
    base = cfg.local_dir if own else (mark.get("local_dir") or cfg.local_dir)

    def configured():
        if base is None:
            raise StorageError(f"version {doc['id']}: its data are on node-local tiers only "
                               f"(not all on {s.paths.root}); give the node-local directory "
                               f"(local_dir=... or VLCC_LOCAL_DIR) to restore it")
    agree(s.comm, configured)
    nodes, store = s.engine.node_store(s.comm, base)
    where = store.node_dir if nodes.simulated else base
    return recover(s.comm, nodes, store, s.paths, doc, where)


def _from_memory(s: Session, vid: str, v: Version, strict: bool, allow_pickle: bool) -> Version:
    src = MemorySource(vid, s.engine.memory.get(vid), s.size, allow_pickle)
    read = Stager(src, True)        # views of the captured leaves: no staging copy

    def check_and_stage():
        check_stored(s, src.stored, src.where, strict)
        return _stage(s, src, read)
    staged = _coll(agree, s.comm, check_and_stage)
    _coll(agree, s.comm, lambda: _apply(s, src, staged))
    s.engine.memory.record_access(vid, hit=True)
    return _restored(s, v)


def _stage(s: Session, src, read: Stager) -> list:
    """Phase 1 on this rank: every provider's staged state (application memory untouched)."""
    where = f"{src.where} on rank {s.rank}"
    return [(p, _call(p, src, lambda p=p: p.stage(src.stored, read, where)))
            for p in s.state.restore_order()]


def _apply(s: Session, src, staged: list) -> None:
    """Phase 2 on this rank: copy staged bytes in, run the callbacks."""
    with stage("staging"):
        for p, st in staged:
            _call(p, src, lambda p=p, st=st: p.apply(st))


def _call(p, src, fn):
    try:
        return fn()
    except VlccError:
        raise
    except Exception as exc:   # the application's set/restore/on_restore callback
        raise ProviderError(f"restoring provider {p.name!r} from {src.where} failed: "
                            f"{type(exc).__name__}: {exc}") from exc


def _restored(s: Session, v: Version) -> Version:
    s.rewound(v.id, v)
    s.engine.memory.advance(v.id)
    prefetch_upcoming(s)
    return v


def fits(s: Session, entry) -> bool:
    """Can the memory-tier entry fill every registered provider as is?"""
    if entry is None:
        return False
    for name, p in s.state.providers.items():
        if isinstance(p, ArrayProvider):
            leaf = entry.leaves.get(name)
            if (leaf is None or leaf.kind != p.kind or np.dtype(leaf.dtype) != p.array.dtype
                    or tuple(leaf.shape) != tuple(p.owned_shape)
                    or (p.kind == Kind.DISTRIBUTED and tuple(leaf.offset) != tuple(p.offset))):
                return False
        elif not any(l.name == name or l.of == name for l in entry.leaves.values()):
            return False
    return True


def check_stored(s: Session, stored: dict, where: str, strict: bool, nranks: int | None = None) -> None:
    """Every registered provider can be filled from ``stored`` (raise before
    any byte is copied)."""
    for p in s.state.providers.values():
        p.check_restore(stored, where)
    for n, e in stored.items():
        owner = e.get("of") or n
        nblocks = stored_entry(e, nranks).nblocks
        if (owner in s.state.providers and e["kind"] != Kind.DISTRIBUTED
                and nblocks != s.size and not e.get("replicated")):
            raise ShapeMismatchError(
                f"provider {n!r} of {where} is per-rank data written on {nblocks} "
                f"ranks with different content per rank; it cannot be restored on "
                f"{s.size} ranks (register it as a distributed array for N→M restart)")
    if strict:
        extra = {e.get("of") or n for n, e in stored.items()} - set(s.state.providers)
        if extra:
            raise MissingProviderError(
                f"{where} has providers that are not registered: {', '.join(sorted(extra))} "
                f"(register them, or restore(..., strict=False) to ignore them)")
