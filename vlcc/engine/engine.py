"""The engine of one Checkpointer on one rank: the memory tier, the optional
node-local tier, a flusher thread (capture copy → local → persistent) and a
prefetcher thread (persistent/local → memory, following the declared plan).

What a flush does is the commit layer's ``flush(pending, store)`` callback
(commit/checkpoint.py); ``store(write)`` is the engine's tiering around the
rank's write: local tier first, mark the capture clean, promote to persistent.
With an MPI library at MPI_THREAD_MULTIPLE the flusher also hashes, agrees on
dedup and commits, on its own duplicate communicator; otherwise it calls no
MPI and the application's thread commits (see commit/checkpoint.py). The
prefetcher never calls MPI."""

from __future__ import annotations

import collections
import concurrent.futures as cf
import dataclasses
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..errors import StorageError
from ..repo.paths import RepoPaths
from ..comm.nodes import NodeMap
from ..comm.protocol import agree
from .buffers import mapped, spare_cpu
from .config import EngineConfig
from .local import LocalTier
from .memory import MemoryTier
from .resilience.store import NodeStore


@dataclass
class Pending:
    """A version captured but not yet committed."""
    vid: str
    parent: str | None
    branch: str
    step: int | None
    message: str
    attrs: dict
    t0: float
    leaves: list
    descs: list                     # this rank's (leaf name, description) list
    boxes: dict | None              # rank 0: distributed leaf -> (offsets, shapes) of all ranks
    nbytes: int = 0
    plan: object = None             # the RankWriter plan (dedup decisions, encoded chunks)
    lock: str | None = None         # rank 0: the repository writer lock (keeps gc away)
    replicated: dict | None = None  # leaf name -> same bytes on every rank (manifest)
    spilled: int = 0                # bytes captured into the node-local tier (memory full)
    dedup_parent: str | None = None  # the version whose chunks this one may reference
    persist: bool = True            # copied to the persistent tier before it commits
    protected: bool = False         # node-local redundancy encoded (application's thread)
    staged: bool = False            # written through the node-shared stage (agreed by the flush)
    finish: object = None           # a node file written without MPI, completed later (NodeFinish)
    promoted: cf.Future | None = field(default=None, repr=False)   # its promotion, after that
    node_range: tuple | None = None  # node files: this rank's (start, nbytes) of the node's data.0
    node_comm: object = None        # ... and the node communicator (flusher with MPI)
    rest_done: bool = False         # node files: the leader's part of the promotion is done
    future: cf.Future | None = field(default=None, repr=False)
    copied: cf.Future | None = field(default=None, repr=False)   # lazy capture copies


class CaptureAlloc:
    """Where one capture's buffers come from, leaf by leaf: a recycled
    (already faulted) buffer of the memory tier; a fresh one while the memory
    budget has room; a buffer in the node-local tier when it has none (spill,
    instead of waiting for the flusher); else a fresh one, and ``submit``
    waits (back-pressure: both tiers full)."""

    def __init__(self, engine: "Engine", lazy=None):
        self.engine = engine
        self.ram = 0
        self.spilled = 0
        self.sizes: list[int] = []     # RAM buffers handed out (to be replaced in the pool)
        # names whose capture copy runs in the background (True: every array)
        self.lazy = lazy
        self.deferred: list[tuple[np.ndarray, np.ndarray]] = []

    def later(self, name: str, dst: np.ndarray, src: np.ndarray) -> bool:
        """Take over the capture copy ``src`` → ``dst`` of provider ``name`` if
        it is lazy: ``Engine.submit`` runs it on the capture thread."""
        if not self.lazy or (self.lazy is not True and name not in self.lazy):
            return False
        self.deferred.append((dst, src))
        return True

    def __call__(self, nbytes: int) -> np.ndarray:
        eng = self.engine
        buf = eng.memory.take(nbytes)
        if buf is None:
            buf = eng.memory.recycle(nbytes)
        if buf is None and not eng.memory.fits(self.ram + nbytes) and eng.local is not None:
            buf = eng.local.spill_buffer(nbytes)
            if buf is not None:
                self.spilled += nbytes
                return buf
        if buf is None:
            buf = mapped(nbytes)
        self.ram += nbytes
        self.sizes.append(nbytes)
        return buf


class Keeper:
    """Sync mode: a copy of the version being written, made on a thread while
    the durable write runs (both only read the application's arrays, which
    the application cannot touch during ``checkpoint()``), then held in the
    memory tier as a clean entry. A restore right after the checkpoint reads
    it from memory: the data files were written with O_DIRECT and are not in
    the page cache, so reading them would cost a disk read. The copy never
    delays the checkpoint: when the write is done first (e.g. deduplicated,
    nothing to write) the copy is abandoned (``commit`` stops it)."""

    _SLICE = 8 << 20        # bytes copied between looks at the stop flag

    def __init__(self, engine: "Engine", vid: str, leaves: list):
        self.engine, self.vid = engine, vid
        self.copies: dict = {}
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self.done = False
        self._thread = threading.Thread(target=self._copy, args=(leaves,),
                                        name="vlcc-keep", daemon=True)
        self._thread.start()

    def _copy(self, leaves) -> None:
        mem = self.engine.memory
        try:
            for leaf in leaves:
                d = leaf.data
                if d is None:
                    self.copies[leaf.name] = leaf
                    continue
                n = int(d.nbytes)
                buf = mem.take(n) if n else None
                if buf is None and n:
                    buf = mem.recycle(n)       # the previous kept version's buffers
                if buf is None:
                    buf = mapped(n)
                self.copies[leaf.name] = dataclasses.replace(leaf, data=buf, pooled=True)
                src = d.reshape(-1).view(np.uint8)
                for o in range(0, n, self._SLICE):
                    if self._stop.is_set():
                        return
                    np.copyto(buf[o:o + self._SLICE], src[o:o + self._SLICE])
            self.done = True
        except BaseException as exc:    # noqa: BLE001 - only the memory copy is lost
            self.error = exc

    def commit(self) -> None:
        """The version is committed: hold the copy (if complete, and if it fits
        without waiting), else drop it."""
        self._stop.set()
        self._thread.join()
        if not (self.done and self.error is None):
            self.abort()
            return
        n = sum(int(l.data.nbytes) for l in self.copies.values() if l.data is not None)
        self.engine.memory.put(self.vid, self.copies, n, dirty=False)
        self.copies = {}

    def abort(self) -> None:
        self._stop.set()
        self._thread.join()
        for leaf in self.copies.values():
            if leaf.data is not None and leaf.pooled:
                self.engine.memory.give(leaf.data)
        self.copies = {}


# Keep a copy of each sync version in the memory tier (``Engine.keep``,
# ``VLCC_KEEP_LAST``, engine/config.py): off by default; ``auto``: while this
# process has a spare CPU (1-min load average below its CPUs minus one),
# since the copy runs beside the write. Measured on
# 2 shared cores at load ~12, 128 MiB, 1 rank: restore right after checkpoint
# 0.98 s (disk: O_DIRECT left nothing in the page cache) -> 0.04-0.05 s, but
# the checkpoint 1.22-1.42x slower (no spare core: the 60 ms copy competes
# with the write's hashing).


def _copy_all(jobs: list[tuple[np.ndarray, np.ndarray]]) -> None:
    # numpy releases the GIL for these copies: they overlap the application's
    # next forward/backward (DataStates-LLM's lazy capture)
    for dst, src in jobs:
        np.copyto(dst, src)


def _warm_flusher() -> None:
    """On the flusher thread, before any flush: load ADIOS2 and create this
    thread's ADIOS2 factory (io/adios_c.py keeps one per thread)."""
    try:
        from ..io import adios_c
        adios_c.warm()
    except Exception:       # noqa: BLE001 - the first flush reports it, with context
        pass


class Engine:
    KEEP_LOCAL = 2   # versions kept in the local tier after promotion, for fast restore

    def __init__(self, cfg: EngineConfig, persistent: RepoPaths, rank: int,
                 flush: Callable[["Pending", Callable], dict], nodes: NodeMap | None = None):
        self.cfg = cfg
        self.nodes = nodes
        # node-local mode: versions go to this node's store, which outlives the process
        self.store = NodeStore(nodes.local_dir(cfg.local_dir), persistent.root).open() \
            if cfg.node_local and nodes is not None else None
        # local_dir staging: the ranks of a node write one node file
        # (docs/format.md, 3.4) into a directory they share, the node leader's
        # process directory of the local tier (``attach_stage``), and the
        # leader promotes it: O(nodes) files per version in the repository, as
        # a direct write has. The leader's directory goes with the leader
        # (removed at close, reclaimed after a kill, as any process directory).
        self.stage: NodeStore | None = None
        self.persisted: dict[str, bool] = {}    # versions of this session: persisted or not
        self._last_persist = time.time()
        self.persistent = persistent
        self.rank = rank
        self._flush_fn = flush
        self.memory = MemoryTier(cfg.memory_budget)
        self.local = (LocalTier(cfg.local_dir, cfg.local_budget, persistent) if cfg.local_dir
                      else None)
        self.pending: list[Pending] = []
        self._flusher = cf.ThreadPoolExecutor(1, thread_name_prefix="vlcc-flush")
        # Start the thread now: started at the first checkpoint, it was part of
        # that checkpoint's blocking time. It also loads ADIOS2 now (~20 ms of
        # the first flush otherwise).
        self._flusher.submit(_warm_flusher)
        self._prefetcher = cf.ThreadPoolExecutor(1, thread_name_prefix="vlcc-prefetch")
        self._copier: cf.ThreadPoolExecutor | None = None    # lazy captures, made at first use
        self._prefetching: dict[str, cf.Future] = {}
        self._local_kept: collections.deque = collections.deque()
        self._lock = threading.Lock()
        self._failed: str | None = None   # a flush failed: later ones are skipped

    @property
    def faster_layouts(self) -> list[RepoPaths]:
        return [t.layout for t in (self.store, self.stage, self.local) if t is not None]

    @property
    def wants_stage(self) -> bool:
        """Are versions staged through ``local_dir`` in node files (the engine
        needs its node leader's directory: ``attach_stage``)?"""
        return (self.store is None and self.nodes is not None and self.local is not None
                and self.cfg.stage_local and self.cfg.mode == "async")

    def attach_stage(self, root: str) -> None:
        """Stage versions in ``root``, the local tier directory of this rank's
        node leader (the same for every rank of the node)."""
        self.stage = NodeStore.at(root, self.persistent.root)

    def drop_local(self, vid: str) -> None:
        """Remove this process's node-local copy of committed version ``vid``
        (VELOC_Cleanup): its per-rank files in its local tier, or, staged in
        node files, its part of the node's stage (the node leader removes the
        node file itself). The repository keeps the version."""
        with self._lock:
            kept = [k for k in self._local_kept if (k[0] if isinstance(k, tuple) else k) == vid]
            for k in kept:
                self._local_kept.remove(k)
        if self.stage is not None:
            node = next((k[1] for k in kept if isinstance(k, tuple)), None)
            if node is None and self.nodes is not None:
                node = self.nodes.node
            self.stage.evict(vid, self.rank, self.nodes is not None and self.nodes.is_leader, node)
        elif self.local is not None:
            self.local.evict(vid, self.rank)

    @property
    def shared(self) -> NodeStore | None:
        """The node-shared directory a flush writes node files into (node store
        or stage), or None."""
        return self.store if self.store is not None else self.stage

    def persist_due(self) -> bool:
        """Rank 0, at a version's capture: is this one copied to the persistent tier
        (``persist``: always, never, or seconds since the last persisted one)?"""
        every = self.cfg.persist
        if every is None:
            return False
        now = time.time()
        if now - self._last_persist < every:
            return False
        self._last_persist = now
        return True

    def is_persisted(self, vid: str | None) -> bool:
        """Is version ``vid`` (or will it be, once flushed) on the persistent tier?"""
        if vid is None or not self.cfg.node_local:
            return True
        if vid in self.persisted:
            return self.persisted[vid]
        return os.path.exists(self.persistent.abs(self.persistent.rel_index_file(vid, 0)))

    def node_store(self, comm, base: str | None = None) -> tuple[NodeMap, NodeStore]:
        """Collective (on first use): this rank's node and its node's store of the
        repository (restore of a version kept on node-local tiers); ``base``:
        the node-local directory to look in when this engine does not write
        to node stores (default: the configured one)."""
        if self.nodes is None:
            from ..comm.nodes import node_map
            self.nodes = node_map(comm)
        if self.store is not None:
            return self.nodes, self.store
        # not written through (redundancy none, persist always): only read here
        return self.nodes, NodeStore(self.nodes.local_dir(base or self.cfg.local_dir),
                                     self.persistent.root)

    # -- write path ------------------------------------------------------------------
    def allocator(self, lazy=None) -> CaptureAlloc:
        """A capture's buffers; ``lazy``: provider names (or True: all) whose
        copies may run after the capture returns (see :meth:`settle`)."""
        return CaptureAlloc(self, lazy)

    def settle(self) -> None:
        """Block until every lazy capture copy is done: the captured arrays may
        be modified again. A failed copy is reported by its version's flush."""
        futs = [p.copied for p in self.pending if p.copied is not None]
        if futs:
            cf.wait(futs)

    def prefault(self, nbytes: int) -> None:
        """Fault in a capture buffer of ``nbytes`` in the background (called at
        register): the first checkpoint then copies into mapped memory."""
        self._prefetcher.submit(self.memory.prefault, int(nbytes))

    def keep(self, vid: str, leaves: list) -> Keeper | None:
        """Sync mode: start copying the leaves of version ``vid`` (being written
        now) for the memory tier (``Keeper``); None when they would take more
        than half the memory budget, or not asked for (``cfg.keep_last``)."""
        n = sum(int(l.data.nbytes) for l in leaves if l.data is not None)
        if self.cfg.mode != "sync" or not n or n > self.memory.budget // 2:
            return None
        keep = self.cfg.keep_last
        if not (keep if keep is not None else spare_cpu()):
            return None
        return Keeper(self, vid, leaves)

    def background(self, fn: Callable, *args) -> None:
        """Run ``fn(*args)`` on the prefetch thread (buffer faulting at register)."""
        self._prefetcher.submit(fn, *args)

    def submit(self, p: Pending, alloc: CaptureAlloc | None = None) -> None:
        """Queue a captured version for flushing. Blocks while the memory tier
        is full of unflushed versions and the capture could not spill to the
        node-local tier (back-pressure)."""
        p.nbytes = sum(int(l.data.nbytes) for l in p.leaves)
        self.persisted[p.vid] = p.persist
        p.spilled = alloc.spilled if alloc is not None else 0
        if p.spilled:
            self.memory.stats.spilled += 1
            self.memory.stats.spilled_bytes += p.spilled
        if alloc is not None and alloc.deferred:
            if self._copier is None:
                self._copier = cf.ThreadPoolExecutor(1, thread_name_prefix="vlcc-capture")
            p.copied = self._copier.submit(_copy_all, alloc.deferred)
            alloc.deferred = []
        self.memory.put(p.vid, {l.name: l for l in p.leaves}, p.nbytes - p.spilled, dirty=True)
        behind = bool(self.pending)
        p.future = self._flusher.submit(self._flush, p)
        self.pending.append(p)
        if behind and not self.memory.has_clean():
            # the flusher is behind (a version was still pending at this
            # capture): the next capture may not recycle a flushed version's
            # buffer, so fault one in now (while the budget has room). Not on
            # the first checkpoint: its flush usually ends long before the
            # next capture, and faulting 64 MiB beside the first flush cost
            # the application ~100 ms here.
            for n in (alloc.sizes if alloc is not None else ()):
                self.prefault(n)

    def _flush(self, p: Pending) -> dict:
        if p.copied is not None:
            cf.wait([p.copied])      # the lazy capture's bytes first
        if self._failed is not None:
            # Same on every rank (a flush fails on all ranks or none), so no
            # rank enters a collective for a version the others skip.
            raise StorageError(f"not flushed: {self._failed} failed before it")
        try:
            if p.copied is not None:
                p.copied.result()    # a failed copy fails the version
            return self._flush_fn(p, lambda write: self._store(p, write))
        except BaseException:
            self._failed = p.vid
            raise

    @property
    def writes_direct(self) -> bool:
        """Does a flush write straight into the repository (no node-local tier
        in between)?"""
        return self.store is None and (self.local is None or not self.cfg.stage_local)

    @property
    def node_files_ok(self) -> bool:
        """May a collective flush write node files (docs/format.md, 3.4)? Yes
        when it writes straight to the repository or into a directory the
        ranks of a node share (node store, stage); not into the per-process
        local tier."""
        return self.writes_direct or self.shared is not None

    def stage_room(self, p: Pending) -> bool:
        """Does ``p`` fit in the stage (after evicting kept versions)? The
        flush agrees on it over all ranks: the ranks of a node write one
        file, so either all stage or none."""
        return self._local_room(p, self.stage.root)

    def _store(self, p: Pending, write: Callable[[RepoPaths], dict]) -> dict:
        """Write ``p`` through the tiers: ``write(layout)`` writes this rank's
        files under ``layout``; returns its result."""
        if self.store is not None:
            return self._store_node_local(p, write)
        if self.stage is not None:
            return self._store_staged(p, write)
        if self.local is None or not self.cfg.stage_local or not self._local_room(p):
            res = write(self.persistent)
            self._clean(p)
            return res
        res = write(self.local.layout)
        # The bytes are safe in the local tier now: the memory copy may be
        # evicted/recycled while the promotion to persistent storage runs.
        self._clean(p)
        self.local.promote(self.persistent, [
            self.persistent.rel_data_file(p.vid, self.rank),
            self.persistent.rel_index_file(p.vid, self.rank)])
        with self._lock:
            self._local_kept.append(p.vid)
            while len(self._local_kept) > self.KEEP_LOCAL:
                self.local.evict(self._local_kept.popleft(), self.rank)
        return res

    def _store_staged(self, p: Pending, write: Callable[[RepoPaths], dict]) -> dict:
        """``local_dir`` staging through the node-shared stage: the node's
        ranks write (node files, when the plan has them), then the leader
        copies the node file to the persistent tier (every rank its own files
        without node files). ``p.staged`` is the flush's agreed room check."""
        if not p.staged:
            res = write(self.persistent)
            self._clean(p)
            return res
        res = write(self.stage.layout)
        self._clean(p)
        if p.finish is None:      # else the node file is completed first (``promote_later``)
            self._promote(p, res.get("node"))
        return res

    def _promote(self, p: Pending, node: int | None) -> None:
        """Copy ``p``'s files from the node-shared tier to the persistent one
        (stage; node store when ``p.persist``) and keep them there. Node
        files: every rank copies its range of the node's data.0, then (node
        collective, with the flusher's MPI) the leader the rest; without it
        the leader's part runs at the next collective call (``promote_rest``)."""
        tier = self.shared
        if p.staged if self.stage is not None else p.persist:
            if node is None:
                tier.promote(self.persistent, p.vid, self.rank)
            else:
                copy = lambda: tier.promote_range(self.persistent, p.vid, node, p.node_range)  # noqa: E731
                if p.node_comm is None:
                    copy()
                else:
                    agree(p.node_comm, copy)          # every range durable, or raise on the node
                    self.promote_rest(p, node)
        # never evict a version still pending (not yet encoded/committed: without
        # the flusher's MPI the application's thread encodes it later)
        self._keep(tier, p.vid, node, {q.vid for q in list(self.pending)} - {p.vid})

    def promote_rest(self, p: Pending, node: int | None) -> None:
        """The node leader's part of a node file's promotion (see ``_promote``)."""
        if (node is not None and not p.rest_done and self.shared is not None
                and self.nodes.is_leader
                and (p.staged if self.stage is not None else p.persist)):
            self.shared.promote_rest(self.persistent, p.vid, node)
        p.rest_done = True

    def promote_later(self, p: Pending, node: int | None) -> None:
        """The flusher calls no MPI: ``p``'s node file was completed on the
        application's thread; its promotion runs on the flusher thread
        (``p.promoted``), overlapped with the application."""
        if p.promoted is None:
            p.promoted = self._flusher.submit(self._promote, p, node)

    def _keep(self, store: NodeStore, vid: str, node: int | None, busy: set,
              keep: int | None = None) -> None:
        """Keep ``vid`` in ``store``; evict the oldest kept versions beyond
        ``keep`` (never one in ``busy``)."""
        keep = self.cfg.keep_local if keep is None else keep
        with self._lock:
            self._local_kept.append((vid, node))
            while len(self._local_kept) > keep and self._local_kept[0][0] not in busy:
                old, onode = self._local_kept.popleft()
                store.evict(old, self.rank, self.nodes.is_leader, onode)

    def _local_room(self, p: Pending, root: str | None = None) -> bool:
        """Whether ``p`` fits in the node-local tier, after evicting the
        promoted copies kept for fast restores if it would not; when it still
        does not fit it is written straight to the persistent tier (a small
        tier must not cost versions the repository has room for)."""
        need = int(p.nbytes) + int(p.nbytes) // 16 + (1 << 20)   # + BP5 metadata and index

        root = root or self.local.root

        def free() -> int:
            try:
                return shutil.disk_usage(root).free
            except OSError:
                return 0
        if free() >= need:
            return True
        with self._lock:
            while self._local_kept:
                old = self._local_kept.popleft()
                if self.stage is not None:
                    self.stage.evict(old[0], self.rank, self.nodes.is_leader, old[1])
                else:
                    self.local.evict(old, self.rank)
        return free() >= need

    def _store_node_local(self, p: Pending, write: Callable[[RepoPaths], dict]) -> dict:
        """Node-local mode: the version's files go to the node's store (encoded
        next by the commit layer, engine/resilience/protect.py), and to the
        persistent tier too when ``p.persist``."""
        res = write(self.store.layout)
        self._clean(p)
        if p.finish is None:      # else the node file is completed first (``promote_later``)
            self._promote(p, res.get("node"))
        return res

    def own_files(self, vid: str, node: int | None = None) -> list[str]:
        """This rank's files of ``vid`` in the node store (what protect encodes):
        with node files (``node``) the leader's are the node's, the others none."""
        return self.store.files_of(vid, self.rank, node, self.nodes.is_leader)

    def _clean(self, p: Pending) -> None:
        if p.spilled:
            # A spilled capture leaves the tiers once written: its node-local
            # buffer is released for the next spill (restores read the files).
            self.memory.drop(p.vid)
            self.local.release_spill(p.spilled)
            p.spilled = 0
        else:
            self.memory.mark_clean(p.vid)

    def flushed_prefix(self, block: bool) -> tuple[list[dict], str | None]:
        """Results of the leading pending versions whose flush finished, and the
        first flush error (as text) if one failed."""
        if block:
            cf.wait([p.future for p in self.pending])
        out: list[dict] = []
        for p in self.pending:
            if not p.future.done():
                break
            exc = p.future.exception()
            if exc is not None:
                return out, f"version {p.vid}: {type(exc).__name__}: {exc}"
            out.append(p.future.result())
        return out, None

    def abandon_pending(self) -> list[str]:
        """Forget every pending version (after a failed flush): their bytes are
        dropped from memory; what they wrote stays invisible (no manifest)."""
        cf.wait([p.future for p in self.pending])
        vids = [p.vid for p in self.pending]
        for p in self.pending:
            self.memory.drop(p.vid)
            if p.spilled and self.local is not None:
                self.local.release_spill(p.spilled)
                p.spilled = 0
        self.pending.clear()
        self._failed = None
        return vids

    # -- read path -------------------------------------------------------------------
    def prefetch(self, vids: list[str], load: Callable[[str], tuple[dict, int] | None]) -> None:
        """Start loading versions into memory in the background, in order, while
        they fit without evicting anything needed sooner."""
        for vid in vids:
            with self._lock:
                if vid in self._prefetching or self.memory.contains(vid):
                    continue
                self._prefetching[vid] = self._prefetcher.submit(self._prefetch_one, vid, load)

    def _prefetch_one(self, vid, load) -> bool:
        try:
            if self.memory.contains(vid):
                return True
            got = load(vid)
            if got is None:
                return False
            leaves, nbytes = got
            return self.memory.put(vid, leaves, nbytes, dirty=False, prefetched=True)
        finally:
            with self._lock:
                self._prefetching.pop(vid, None)

    def wait_prefetch(self, vid: str) -> None:
        with self._lock:
            fut = self._prefetching.get(vid)
        if fut is not None:
            try:
                fut.result()
            except Exception:
                pass  # a failed prefetch is a miss; the restore reads and reports

    def close(self) -> None:
        if self._copier is not None:
            self._copier.shutdown(wait=True)
        self._prefetcher.shutdown(wait=True, cancel_futures=True)
        self._flusher.shutdown(wait=True)
        self.memory.clear()
        if self.stage is not None:
            # the stage is a cache of persisted versions: this process's go with it
            # (a killed job's stay there, as a node store's do)
            with self._lock:
                while self._local_kept:
                    vid, node = self._local_kept.popleft()
                    self.stage.evict(vid, self.rank, self.nodes.is_leader, node)
        if self.local is not None:
            self.local.destroy()
