"""The collective checkpoint (docs/architecture.md, "One checkpoint"):

1. capture + describe (every rank) → gather on rank 0 → validate, writer
   lock, new id → bcast;
2. prepare: hash, dedup lookup, encode, agree on shared chunks (allgather);
3. sync: write this rank's chunks + index (every rank) → gather on rank 0 →
   ``commit_version`` (manifest by atomic rename = the commit, then the
   branch ref) → bcast. Async: queue the version for the engine's flusher;
   ``progress`` commits flushed versions at later collective calls.

Async with MPI at MPI_THREAD_MULTIPLE (``s.flush_comm`` set): steps 2 and 3
run in the engine's flusher thread, on the flusher's own duplicate
communicator (``flush``): the application's thread only captures and gets an
id. Every rank's flusher takes the versions in the same (submission) order,
so their collectives match; a failure anywhere fails the version on every
rank (the protocol helpers carry errors as payloads), and ``progress``
raises it at the next collective call of the application.

Every step goes through comm/protocol.py, so a failure on one rank is
raised on all, and every path releases the writer lock."""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import shutil
import time
from typing import Any

import numpy as np

from ..engine.engine import Pending
from ..engine.resilience.codes import stripes
from ..errors import ArgumentError, BranchMovedError, ProviderError, StorageError
from ..repo import locks, refs
from ..repo.fsutil import atomic_write, makedirs
from ..repo.manifest import Version
from ..repo.paths import new_version_id
from ..repo.sealed import seal
from ..repo.records import Kind
from ..state.array import ArrayProvider
from . import manifest
from .parents import gone_parents, replace_gone
from .rankwrite import gather_allowed, needs_gather, reserve_gather
from ..comm.protocol import QuietComm, agree, allgather, gather_decide, private, threads_ok
from .session import Session
from .validate import boxes_of, compact, validate_compact, validate_leaves


def flusher_comm(comm, cfg):
    """Collective (at Checkpointer creation): the flusher thread's own
    communicator when it may run collectives (async, MPI_THREAD_MULTIPLE,
    not disabled by ``VLCC_FLUSH_MPI=0``), else None."""
    if cfg.mode == "async" and cfg.flush_mpi and threads_ok(comm):
        return QuietComm(private(comm))
    return None


def bind_flusher(s: Session) -> None:
    """Collective at open: the communicators the flusher thread will use
    (its node communicator for node files) are made now, on the
    application's thread: a communicator made on the flusher beside the
    application's collectives could hang MPICH (comm/protocol.created)."""
    if s.flush_comm is not None and s.engine.node_files_ok:
        s.writer.bind_nodes(s.flush_comm, s.engine.nodes)


def registered(s: Session, provider) -> None:
    """A provider was registered: in async mode fault in its capture buffer in
    the background, so the first checkpoint copies into mapped pages."""
    if s.mode == "async" and isinstance(provider, ArrayProvider):
        n = provider.owned().nbytes
        s.engine.prefault(n)
        if (provider.kind == Kind.DISTRIBUTED and n
                and needs_gather(provider.offset, provider.owned_shape, provider.global_shape,
                                 provider.array.dtype.itemsize, s.writer.chunk_size)
                and (s.writer.hasher.track or provider.name in s.writer.codecs
                     or gather_allowed(n))):
            # and the buffer its tile-major gather will need (unless memory is
            # short: the flush then reads the pieces out of the capture,
            # commit/rankwrite.py)
            s.engine.background(reserve_gather, n)


def check_attrs(attrs) -> dict:
    """Strict JSON object with string keys (no NaN: it is not JSON)."""
    if attrs is None:
        return {}
    if not isinstance(attrs, dict) or not all(isinstance(k, str) for k in attrs):
        raise ArgumentError("attrs must be a dict with string keys")
    try:
        json.dumps(attrs, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ArgumentError(f"attrs must be JSON-serializable (no NaN/inf): {exc}") from None
    return dict(attrs)


def checkpoint(s: Session, step, message: str, attrs, lazy=None) -> Version:
    """Collective: capture every provider into a new version (see module doc).
    ``lazy`` (async with flusher collectives only): names of array providers
    (or True: all) whose capture copy runs in the background after this
    returns; the caller leaves them unmodified until ``engine.settle()``."""
    if s.engine.pending:
        s.engine.settle()         # a previous lazy capture is complete before this one
        progress(s, block=False)
    threaded = s.mode == "async" and s.flush_comm is not None
    pend, alloc = issue(s, step, message, attrs, threaded, lazy)
    prepare(s, pend, threaded)
    if s.mode == "async":
        v = submit(s, pend, alloc, threaded)
    else:
        v = write_and_commit(s, pend)
    _raise_if_diverged(s)
    return v


def issue(s: Session, step, message: str, attrs, threaded: bool,
          lazy=None) -> tuple[Pending, Any]:
    """Collective, step 1: capture and describe every provider, rank 0
    validates all ranks' descriptions, takes the writer lock and issues the
    id. Returns the version (holding the lock) and the capture's allocator."""
    eng = s.engine
    t0 = time.time()
    holder: dict = {}
    is_async = s.mode == "async"
    # the application's thread prepares (hashes) right after the capture
    # without flusher collectives, and compare_to reads the captured bytes:
    # then there is nothing to gain from a lazy copy
    lazy = lazy if threaded and s.compare is None else None

    def own_parent():
        # threaded: the flusher writes versions in order, so the parent (in
        # flight or committed) is written before this one is prepared
        return s.parent if threaded else dedup_parent(s)

    def capture():
        if not s.state.providers:
            raise ProviderError("nothing to checkpoint: no provider is registered")
        if eng.nodes is not None and eng.cfg.node_local:
            stripes(eng.cfg.redundancy, eng.nodes.nnodes)   # enough nodes for the scheme?
        if step is not None and (not isinstance(step, (int, np.integer)) or isinstance(step, bool)):
            raise ArgumentError(f"step must be an int, got {type(step).__name__}")
        if message is not None and not isinstance(message, str):
            raise ArgumentError(f"message must be a str, got {type(message).__name__}")
        holder["attrs"] = check_attrs(attrs)
        holder["alloc"] = alloc = eng.allocator(lazy) if is_async else None
        leaves = s.state.capture(copy=is_async, alloc=alloc)
        holder["leaves"] = leaves
        holder["descs"] = [(l.name, l.describe()) for l in leaves]
        # this rank's dedup parent travels with its description: rank 0
        # re-checks it under the writer lock (commit/parents.py)
        return compact(holder["descs"]), own_parent()

    def new_id(boxes, candidates):
        holder["boxes"] = boxes
        # gc never runs while this is held: the parent's chunks this version
        # will reference stay (repo/gc.py). Async: held until committed.
        holder["lock"] = locks.acquire_writer(s.paths)
        return new_version_id(), eng.persist_due(), *gone_parents(s, candidates)

    def decide(payloads):
        # fixed-size records per rank: a signature and the distributed boxes
        boxes = validate_compact(holder["descs"], [p[0] for p in payloads])
        return None if boxes is None else new_id(boxes, [p[1] for p in payloads])

    def decide_full(all_descs):
        validate_leaves([d for d, _ in all_descs])   # names what differs (or accepts mixed value leaves)
        return new_id(boxes_of([d for d, _ in all_descs]), [p for _, p in all_descs])

    try:
        decision = gather_decide(s.comm, capture, decide)
        if decision is None:   # some rank's providers differ from rank 0's: full descriptions
            decision = gather_decide(s.comm, lambda: (holder["descs"], own_parent()),
                                     decide_full)
    except BaseException:
        locks.release(holder.pop("lock", None))
        raise
    vid, persist, gone, instead = decision
    pend = Pending(vid=vid, parent=s.parent, branch=s.branch, persist=persist,
                   step=None if step is None else int(step), message=message or "",
                   attrs=holder.pop("attrs", {}), t0=t0, leaves=holder.pop("leaves"),
                   descs=holder.pop("descs"), boxes=holder.pop("boxes", None))
    pend.lock = holder.pop("lock", None)
    # a dedup parent pruned (and maybe gc'ed) since the last checkpoint is
    # replaced by the branch head: never reference a deleted file
    pend.dedup_parent = replace_gone(own_parent(), gone, instead)
    if not (persist and eng.is_persisted(pend.dedup_parent)):
        # a version kept on node-local tiers may be evicted from them: no
        # version references its chunks; and one that may never reach the
        # persistent tier references none (gc cannot read its indexes):
        # docs/format.md, "Node-local redundancy"
        pend.dedup_parent = None
    return pend, holder.pop("alloc", None)


def prepare(s: Session, pend: Pending, threaded: bool) -> None:
    """Step 2 (collective): the compare_to hook; hash, dedup agreement and
    encoding, unless the flusher does them (threaded)."""
    try:
        if s.compare is not None:   # core hook: compare_to (collective; notes pend.attrs)
            s.compare.check(pend)
        if not threaded:            # else the flusher prepares (see flush)
            # sync: the write is collective too, so a node's ranks share files
            # (docs/format.md, 3.4); async: each rank's flusher writes its range
            # of the node file alone and ``progress`` completes it (finish_node)
            eng = s.engine
            pend.plan = s.writer.prepare(s.comm, pend.dedup_parent, pend.leaves,
                                         nodes=s.mode != "async" or eng.node_files_ok)
            pend.replicated = pend.plan.replicated
            if s.mode == "async" and eng.stage is not None:   # a node stages one file: all or none
                pend.staged = all(allgather(s.comm, lambda: eng.stage_room(pend)))
    except BaseException:
        if not threaded:            # (the flusher owns the writer's plan state)
            s.writer.abort()
        locks.release(pend.lock)
        raise


def submit(s: Session, pend: Pending, alloc, threaded: bool) -> Version:
    """Async, step 3: queue the version for the flusher; it is pending."""
    if not threaded:
        s.writer.prepared(pend.vid, pend.plan)
        s.writer.detach_plan()
    try:
        s.engine.submit(pend, alloc)   # may wait (both tiers full)
    except BaseException:
        locks.release(pend.lock)
        raise
    v = Version.from_manifest(manifest.provisional(pend, s.size))
    s.issued(v)
    return v


def write_and_commit(s: Session, pend: Pending) -> Version:
    """Sync, step 3 (collective): every rank writes its part, rank 0 commits."""
    vid = pend.vid
    # a copy for the memory tier while the version is written (engine.Keeper)
    keeper = s.engine.keep(vid, pend.leaves)
    try:
        doc = gather_decide(s.comm, lambda: s.writer.write(vid),
                            lambda results: commit_version(s, pend, results))
    except BaseException:
        if keeper is not None:
            keeper.abort()
        s.writer.abort()
        if s.rank == 0 and not os.path.exists(s.paths.manifest(vid)):
            shutil.rmtree(s.paths.data_dir(vid), ignore_errors=True)
        raise
    finally:
        locks.release(pend.lock)
        pend.lock = None
    s.writer.committed(vid)
    if keeper is not None:
        keeper.commit()
    return _committed(s, doc)


def _raise_if_diverged(s: Session) -> None:
    if s.compare is not None:   # core hook: on_diverge="raise"
        s.compare.raise_if_diverged()


def _committed(s: Session, doc: dict) -> Version:
    v = Version.from_manifest(doc, s.paths.root)
    s.issued(v)
    return v


def dedup_parent(s: Session) -> str | None:
    """The version whose chunks the next one may reference: the parent, also
    while it is still being flushed (async: its chunk table is known from its
    agreed plan, so a chunk captured for an in-flight version is referenced,
    never written twice); the newest version already written only when the
    parent's table is not at hand here."""
    if s.parent not in {p.vid for p in s.engine.pending} or s.writer.knows(s.parent):
        return s.parent
    return s.writer.last_written()


def commit_version(s: Session, pend: Pending, results: list[dict]) -> dict:
    """Rank 0: write the manifest (the commit point), then move the branch.

    Serialized per branch by the ref lock. If the branch head is no longer
    the one this writer last saw (another job wrote to the branch), the
    version is rebased: its manifest names the new head as parent and the
    parent it was captured from as ``rebased_from``; with
    ``if_moved="fail"`` BranchMovedError is raised and nothing is committed.
    Either way no version silently drops off the branch's lineage
    (docs/format.md, section 5). A parent that no longer exists (pruned
    since this writer saw it, e.g. a restored old version) is replaced by the
    branch head the same way: a manifest never names a deleted parent."""
    doc, side_files = manifest.build(pend, results, mode=s.mode, chunk_size=s.chunk_size)
    for rel, raw in side_files.items():      # durable before the commit point
        atomic_write(s.paths.abs(rel), raw)
    with refs.ref_lock(s.paths, "branch", pend.branch):
        head = s.catalog.branch_head(pend.branch)
        seen = s.seen_head(pend.branch, head)
        parent = doc["parent"]
        moved = head is not None and head != seen and head != parent
        if moved and s.if_moved != "rebase":
            raise BranchMovedError(
                f"branch {pend.branch!r} of {s.paths.root} moved to {head} (another writer); "
                f"version {pend.vid} with parent {parent} was not committed")
        if moved or (parent is not None and parent != head
                     and not os.path.exists(s.paths.manifest(parent))):
            doc["rebased_from"] = parent
            doc["parent"] = head
        raw = seal(doc)
        atomic_write(s.paths.manifest(pend.vid), raw)
        s.catalog.remember(dict(doc), raw)     # as written (ref_error below is not on disk)
        try:
            refs.write_branch(s.paths, pend.branch, pend.vid)
        except StorageError as exc:
            # Committed: the manifest is durable and readers repair the head
            # from the parent link (section 5). Say so instead of failing.
            doc["ref_error"] = str(exc)
    s.head_set(pend.branch, pend.vid)
    return doc


def progress(s: Session, block: bool) -> list[dict]:
    """Collective: commit, in order, the pending versions every rank has
    flushed (all of them with ``block``). A failed flush on any rank
    abandons every pending version and raises on all ranks; so does a
    version refused because the branch moved (``if_moved="fail"``): the
    versions after it descend from it."""
    eng = s.engine
    pend = list(eng.pending)
    if s.flush_comm is not None:
        return _progress_threaded(s, block)
    limit = _complete_flushed(s, block)

    def local():
        done, err = eng.flushed_prefix(block)
        # node files promoted without flusher MPI: every rank's range is copied
        # (agreed by _complete_flushed); the leaders complete them before the
        # commit, and a failure is carried by this gather
        for i, p in enumerate(pend[:min(limit, len(done))]):
            if p.finish is not None and not p.rest_done:
                try:
                    eng.promote_rest(p, done[i].get("node"))
                except Exception as exc:   # noqa: BLE001 - the gather raises it on every rank
                    return done[:i], f"version {p.vid}: promotion: {type(exc).__name__}: {exc}"
        return done, err

    def decide(all_):
        k = min(len(done) for done, _ in all_)
        if limit is not None:
            k = min(k, limit)        # encoded (node-local redundancy) before commit
        docs, moved = [], None
        for i in range(k):
            try:
                docs.append(commit_version(s, pend[i], [all_[r][0][i] for r in range(s.size)]))
            except BranchMovedError as exc:
                moved = str(exc)
                break
        errs = [f"rank {r}: {e}" for r, (_, e) in enumerate(all_) if e]
        return docs, errs, moved
    docs, errs, moved = gather_decide(s.comm, local, decide)
    _accept(s, docs)
    if errs or moved:
        _abandon(s, pend, docs, moved, errs[0] if errs else None)
    return docs


def _complete_flushed(s: Session, block: bool) -> int:
    """Without the flusher's MPI, on the application's thread, for the leading
    pending versions every rank has flushed: complete their node files (the
    leader of each node places data.0 and writes the node index:
    ``rankwrite.finish_node``, node collective), encode them under the
    node-local redundancy (node store), and hand their promotion to the
    persistent tier back to the flusher thread. Returns how many are complete
    on every rank (so may be committed). A failure abandons every pending
    version on every rank (as a failed flush does)."""
    from .rankwrite import finish_node
    eng = s.engine
    pend = list(eng.pending)
    counts = allgather(s.comm, lambda: len(eng.flushed_prefix(block)[0]))
    k = min(counts)
    err = None
    for p in pend[:k]:
        if p.finish is not None and not isinstance(p.finish, str):
            try:
                res = p.future.result()
                res["index_checksum"] = finish_node(p.finish)   # (the commit's gather sends it)
                p.finish = "done"
            except Exception as exc:   # noqa: BLE001 - agreed on every rank below
                err = f"version {p.vid}: node file: {type(exc).__name__}: {exc}"
                break
    errs = [e for e in allgather(s.comm, lambda: err) if e]   # (node collectives fail per node)
    if errs:
        _abandon(s, pend, [], None, errs[0])
    if eng.store is not None:
        try:
            for p in pend[:k]:
                if not p.protected:
                    protect_node_local(s, s.comm, p, None, p.future.result().get("node"))
                    p.protected = True
        except Exception as exc:   # noqa: BLE001 - the same on every rank (collective)
            _abandon(s, pend, [], None, f"node-local redundancy: {type(exc).__name__}: {exc}")
    if eng.shared is None:
        return k
    # node files completed here are promoted by the flusher thread; a version
    # commits once every rank's promotion is done
    done, err = 0, None
    for p in pend[:k]:
        if p.finish is not None:
            eng.promote_later(p, p.future.result().get("node"))
    for p in pend[:k]:
        if p.promoted is not None:
            if block:
                cf.wait([p.promoted])
            if not p.promoted.done():
                break
            exc = p.promoted.exception()
            if exc is not None:
                err = f"version {p.vid}: promotion: {type(exc).__name__}: {exc}"
                break
        done += 1
    got = allgather(s.comm, lambda: (done, err))
    errs = [e for _d, e in got if e]
    if errs:
        _abandon(s, pend, [], None, errs[0])
    return min(d for d, _e in got)


def _progress_threaded(s: Session, block: bool) -> list[dict]:
    """``progress`` when the flushers commit: agree on how many leading
    pending versions every rank has seen finish, and raise a failed flush
    only once every rank has seen it fail (its outcome is the same on all
    ranks, but a rank may not have returned from the flusher's collective
    yet: then it is raised at a later call)."""
    eng = s.engine
    pend = list(eng.pending)

    def local():
        done, err = eng.flushed_prefix(block)
        moved = err is not None and isinstance(pend[len(done)].future.exception(), BranchMovedError)
        return len(done), err, moved

    def decide(all_):
        k = min(n for n, _, _ in all_)
        failed = all(e is not None and n == k for n, e, _ in all_)
        return k, (all_[0][1] if failed else None), failed and all_[0][2]
    k, err, moved = gather_decide(s.comm, local, decide)
    docs = [p.future.result() for p in pend[:k]]
    _accept(s, docs)
    if err is not None:
        _abandon(s, pend, docs, err if moved else None, None if moved else err)
    return docs


def _accept(s: Session, docs: list[dict]) -> None:
    """The leading pending versions were committed (``docs``, in order): they
    leave the pending list (and release their writer locks)."""
    for doc in docs:
        locks.release(s.engine.pending.pop(0).lock)
        s.accepted(doc)


def _abandon(s: Session, pend: list, docs: list[dict], moved: str | None,
             err: str | None) -> None:
    """After a failed flush or a refused commit (``moved``) on any rank, every
    rank drops the pending versions left (the ones after it descend from it):
    writer locks released, rank 0 removes their data, the next version's
    parent is the last committed one. Raises on every rank."""
    eng = s.engine
    for p in eng.pending:
        locks.release(p.lock)
    abandoned = eng.abandon_pending()
    if s.rank == 0:
        for vid in abandoned:
            if not os.path.exists(s.paths.manifest(vid)):
                shutil.rmtree(s.paths.data_dir(vid), ignore_errors=True)
    k = len(docs)
    s.rewound(docs[-1]["id"] if docs else (pend[k].parent if len(pend) > k else s.parent))
    if moved:
        raise BranchMovedError(f"{moved}; versions {', '.join(abandoned)} were abandoned")
    raise StorageError(f"asynchronous flush failed ({err}); versions "
                       f"{', '.join(abandoned)} were abandoned, committed versions are intact")


def flush(s: Session, pend: Pending, store) -> dict:
    """The engine's flush of one pending version (its flusher thread);
    ``store(write)`` runs ``write(layout)`` through the tiers.

    Without ``s.flush_comm``: write this rank's part (prepared by the
    application's thread); no MPI here; ``progress`` commits. With it:
    prepare (hash, dedup agreement), write, then commit, all collective on
    the flusher's communicator; returns the committed manifest."""
    if s.flush_comm is None:
        return store(lambda lay: flush_write(s, lay, pend, defer=True))
    fc = s.flush_comm        # a QuietComm: slower ranks are awaited asleep, not spinning
    try:
        # The parent was flushed (and committed) by this thread before, or
        # is an older committed version: its chunk table is exact.
        # The write is collective here too, so the ranks of a node share files
        # (docs/format.md, 3.4), wherever the tier they write to is shared by
        # the node (repository, node store, stage)
        pend.plan = s.writer.prepare(fc, pend.dedup_parent, pend.leaves,
                                     nodes=s.engine.node_files_ok)
        pend.replicated = pend.plan.replicated
        if s.engine.stage is not None:   # a node's ranks stage one file: all or none
            pend.staged = all(allgather(fc, lambda: s.engine.stage_room(pend)))
    except BaseException:
        s.writer.abort()
        raise
    s.writer.detach_plan()
    try:
        res, own = store(lambda lay: flush_write(s, lay, pend)), None
    except Exception as exc:   # noqa: BLE001 - carried into the commit collective
        res, own = None, exc
    finish = None
    if s.engine.store is not None:     # node-local mode: encode, before the commit
        try:
            finish = protect_node_local(s, fc, pend, own, None if res is None else res.get("node"),
                                        defer=True)
        except Exception as exc:   # noqa: BLE001 - raised on every rank alike
            own = own or exc

    def local():
        if own is not None:
            raise own
        if finish is not None:
            finish()        # protect's last step (shares, layout): agreed by this gather
        return res

    try:
        doc = gather_decide(fc, local, lambda results: commit_version(s, pend, results))
    except BaseException:
        if s.rank == 0 and not os.path.exists(s.paths.manifest(pend.vid)):
            shutil.rmtree(s.paths.data_dir(pend.vid), ignore_errors=True)
        raise
    # Committed: gc may run now. Released here, not at the application's next
    # call: that call may be a checkpoint waiting for gc to finish before it
    # takes its own lock, while gc waits for this one (a deadlock).
    lock, pend.lock = pend.lock, None
    locks.release(lock)
    return doc


def node_local_nodes(comm, cfg, flush_comm):
    """Collective at open: the node map when versions go to node stores (None
    otherwise). With ``flush_comm`` the flusher encodes (overlapped); without
    (MPI below MPI_THREAD_MULTIPLE, e.g. a C program's MPI_Init) the
    application's thread encodes at the next collective call."""
    if not cfg.node_local:
        if cfg.local_dir and cfg.stage_local and cfg.mode == "async":
            # versions staged through local_dir: the node's ranks share a stage
            # directory and write node files there (engine.Engine.stage)
            from ..comm.nodes import node_map
            return node_map(comm)
        return None
    if cfg.redundancy.kind != "none" and comm.size > 1 \
            and not hasattr(getattr(comm, "inner", comm), "Isend"):
        raise ArgumentError(f"redundancy={cfg.redundancy.spec!r} sends parity between nodes: "
                            f"it needs an mpi4py communicator, not {type(comm).__name__}")
    from ..comm.nodes import node_map
    return node_map(comm)


def attach_stage(comm, engine) -> None:
    """Collective at open: the ranks of a node that stage versions through
    ``local_dir`` share the node leader's local tier directory (node files)."""
    if engine.wants_stage:
        roots = allgather(comm, lambda: engine.local.root)
        engine.attach_stage(roots[engine.nodes.leader(engine.nodes.node)])


def protect_node_local(s: Session, fc, pend: Pending, failed: Exception | None,
                       node: int | None = None, defer: bool = False):
    """Collective on the flusher's communicator: encode the version's node-local
    files under the redundancy scheme; a version that is not persisted gets
    ``data/<V>/nodelocal.json`` in the repository (rank 0), so readers can
    say where its data are. ``defer``: returns protect's last step (write
    the shares and layout, the record) for the caller's next collective to
    run and agree on (the commit's gather); else None."""
    from ..engine.resilience.protect import protect
    from ..repo.nodelocal import NODELOCAL, record_rel
    eng = s.engine
    own = failed if failed is not None else eng.own_files(pend.vid, node)

    def mark(doc):
        # agreed with protect's last step (one collective less per version)
        if s.rank == 0 and not pend.persist:
            makedirs(s.paths.data_dir(pend.vid))
            atomic_write(s.paths.abs(record_rel(pend.vid, NODELOCAL)), json.dumps({
                "version": pend.vid, "scheme": doc["scheme"], "local_dir": eng.cfg.local_dir,
                "nodes": [{"label": n["label"], "ranks": n["ranks"]} for n in doc["nodes"]],
            }, sort_keys=True).encode())
    return protect(fc, eng.nodes, eng.store, pend.vid, eng.cfg.redundancy, own, also=mark,
                   defer=defer)[1]


def flush_write(s: Session, paths, pend: Pending, defer: bool = False) -> dict:
    """Runs in the engine's flusher thread; ``defer``: no MPI here (a node
    file is completed by ``progress``)."""
    from .rankwrite import write_rank
    res = write_rank(paths, pend.vid, s.rank, pend.plan, defer=defer)
    pend.finish = res.pop("finish", None)
    node = pend.plan.node
    if node is not None:      # what this rank copies of the node file at promotion
        pend.node_range = node.layout.range_of(s.rank)
        pend.node_comm = None if defer else node.comm
    s.writer.note_written(pend.vid, pend.plan)
    pend.leaves = []   # the memory tier holds them for restore
    pend.plan = None
    return res


__all__ = ["checkpoint", "progress", "commit_version", "flush", "flush_write", "dedup_parent",
           "check_attrs"]
