"""Checkpointer: the collective, public face of vlcc (one per communicator).

Checkpoint protocol (docs/architecture.md):
  1. capture + describe (every rank) → gather on rank 0 → validate, new id → bcast
  2. write this rank's chunks + index, fsync (every rank)  → gather on rank 0 →
     manifest by atomic rename (the commit point), branch ref moved → bcast
Every step goes through commit.protocol so a failure on one rank is raised on all.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import socket
import sys
import time
from typing import Any, Callable, Sequence

import numpy as np

from . import __version__
from .commit.protocol import agree, gather_decide, root_only
from .commit.validate import validate_leaves
from .engine.config import EngineConfig
from .engine.engine import Engine, Pending
from .errors import MissingProviderError, NotFoundError, ProviderError, ShapeMismatchError, StorageError, VlccError
from .io.rankwrite import RankWriter, write_rank
from .repo.gc import acquire_writer_lock, release_lock
from .layout.chunking import DEFAULT_CHUNK_SIZE
from .layout.coalesce import DEFAULT_COALESCE_BELOW
from .repo import layout as repo_layout
from .repo import refs
from .repo.fsutil import atomic_write
from .repo.manifest import MANIFEST_VERSION, Version, load_manifest, seal
from .repo.repository import Repository
from .restore.reader import VersionReader
from .state.array import ArrayProvider
from .state.derived import DerivedProvider
from .state.provider import Leaf
from .state.registry import State


def MPI_MIN():
    from ._mpi import op_min      # MPI.MIN, or min on the serial stand-in (no MPI loaded)
    return op_min()


def _default_comm():
    from .commit.serial import default_comm   # COMM_WORLD under a launcher, else one rank, no MPI
    return default_comm()


def slurm_info() -> dict:
    keys = {"SLURM_JOB_ID": "job_id", "SLURM_ARRAY_JOB_ID": "array_job_id",
            "SLURM_ARRAY_TASK_ID": "array_task_id", "SLURM_JOB_NAME": "job_name",
            "SLURM_RESTART_COUNT": "restart_count", "SLURM_CLUSTER_NAME": "cluster"}
    return {v: os.environ[k] for k, v in keys.items() if k in os.environ}


class Checkpointer:
    """Collective checkpoint/restore of registered providers into a repository.

    Parameters
    ----------
    path:        repository directory; created (collectively) when missing.
    comm:        mpi4py communicator (default ``MPI.COMM_WORLD``); vlcc works on a duplicate.
    branch:      branch new versions go to (default ``"main"``).
    mode:        ``"sync"`` (default): ``checkpoint()`` returns once the version is committed;
                 ``"async"``: it returns once the providers are copied into the memory tier;
                 background threads write local → persistent; the version is committed at
                 a later collective call (``checkpoint``, ``wait``, ``restore``, ``close``).
    memory_budget: bytes (or "512MiB") of the memory tier per rank (default 1 GiB,
                 env ``VLCC_MEMORY_BUDGET``); async checkpoints wait when it is full.
    local_dir:   node-local tier directory (default for async: under /dev/shm; env
                 ``VLCC_LOCAL_DIR``; ``"none"`` disables it).
    chunk_size:  bytes per chunk (integrity/dedup unit).
    dedup:       store a chunk only if neither the parent version (same rank)
                 nor a lower rank of this version already stores it (default True).
    track_dirty: keep a copy of the last capture and hash only changed chunks
                 (Numba compare kernel; costs one copy of the state in memory).
    coalesce_below: leaves smaller than this many bytes (default 64 KiB; 0 disables)
                 are packed into one per-rank buffer before chunking: one BP5
                 variable and a few chunks instead of one each (docs/format.md 3.1).
    compare_to:  ``"PATH[@BRANCH]"`` of a reference run: each checkpoint is compared with
                 its version of the same step within ``rtol``/``atol``; the first divergence
                 is recorded in the version (``attrs["divergence"]``) and on ``ck.divergence``;
                 ``on_diverge="raise"`` raises vlcc.DivergenceError (vlcc/tools/compare.py).
    """

    def __init__(self, path: str | os.PathLike, comm=None, *, branch: str = "main",
                 mode: str | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE, create: bool = True,
                 dedup: bool = True, track_dirty: bool = False,
                 coalesce_below: int = DEFAULT_COALESCE_BELOW,
                 memory_budget: int | str | None = None, local_dir: str | None = None,
                 compare_to: str | None = None, rtol: float = 0.0, atol: float = 0.0,
                 on_diverge: str = "record"):
        cfg = EngineConfig.resolve(mode, memory_budget, local_dir)
        mode = cfg.mode
        if int(chunk_size) <= 0:
            raise VlccError(f"chunk_size must be a positive number of bytes, got {chunk_size}")
        if int(coalesce_below) < 0:
            raise VlccError(f"coalesce_below must be >= 0 bytes (0 disables), got {coalesce_below}")
        base = comm if comm is not None else _default_comm()
        self.comm = base.Dup()
        self.rank, self.size = self.comm.rank, self.comm.size
        self.path = os.path.abspath(os.fspath(path))
        self.mode, self.chunk_size = mode, int(chunk_size)
        self.layout = repo_layout.Layout(self.path)
        self._state = State()
        self._writer = RankWriter(self.layout, self.rank, self.chunk_size, size=self.size,
                                  dedup=dedup, track_dirty=track_dirty,
                                  coalesce_below=int(coalesce_below))
        self._closed = False
        repo_layout.check_ref_name(branch, "branch")

        def open_repo():
            if create:
                repo_layout.create(self.layout)
            repo = Repository(self.path)
            return repo.branch_head(branch)
        try:
            head = root_only(self.comm, open_repo)
        except Exception:
            self.comm.Free()
            raise
        self._repo = Repository(self.path) if self.rank == 0 else None
        try:
            self._engine = agree(self.comm, lambda: Engine(cfg, self.layout, self.rank,
                                                          self._flush_write))
        except Exception:
            self.comm.Free()
            raise
        self.branch_name = branch
        self.parent: str | None = head
        self.last_version: Version | None = None
        # core hook (tools): reference-run comparison and `vlcc replay` (vlcc/tools/).
        from .tools.compare import Comparator
        from .tools.replay import apply_env
        try:
            self._compare = None if compare_to is None else Comparator(
                self.comm, compare_to, rtol=rtol, atol=atol, on_diverge=on_diverge)
            apply_env(self)
        except Exception:
            self.close()
            raise

    # -- context manager ----------------------------------------------------------
    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"vlcc.Checkpointer({self.path!r}, branch={self.branch_name!r}, "
                f"rank={self.rank}/{self.size})")

    def _check_open(self):
        if self._closed:
            raise VlccError(f"Checkpointer for {self.path} is closed")

    @property
    def divergence(self) -> dict | None:
        """The first divergence from the ``compare_to`` reference run (None while equal)."""
        return None if self._compare is None else self._compare.first

    @property
    def repository(self) -> Repository:
        return Repository(self.path)

    # -- providers ----------------------------------------------------------------
    def register(self, name: str, obj: Any, *, global_shape: Sequence[int] | None = None,
                 offset: Sequence[int] | None = None, halo: int | Sequence[int] = 0,
                 on_restore: Callable[[np.ndarray], None] | None = None,
                 compress: Any = None) -> None:
        """Register a provider under ``name`` (local, not collective; every rank
        must register the same names before the next checkpoint).

        ``obj`` is a numpy array (with ``global_shape``/``offset``/``halo`` for
        a block of a distributed array; ``on_restore(array)`` may refresh halos),
        a :class:`vlcc.ValueProvider`, or any object with ``capture()``/``restore()``.
        ``compress``: codec for its chunks ("zstd", "blosc2", a config dict such
        as ``{"id": "zstd", "level": 9}``, or True for zstd); recorded per chunk.
        Lossy compression is never the default: only an explicit
        ``{"id": "zfp", "tolerance": E}`` (absolute error bound, recorded in the
        index) stores float32/float64 leaves lossily; they then restore within
        ``E``, not bit-exact (other leaves of the provider are stored raw).
        See docs/format.md, section 10."""
        self._check_open()
        kw = {}
        if isinstance(obj, np.ndarray):
            kw = dict(global_shape=global_shape, offset=offset, halo=halo, on_restore=on_restore)
        elif global_shape is not None or offset is not None or halo or on_restore:
            raise ProviderError(f"provider {name!r}: global_shape/offset/halo/on_restore apply "
                                f"to numpy arrays only")
        from .encode import get_codec
        codec = None if compress in (None, False) else get_codec("zstd" if compress is True else compress)
        self._state.add(name, obj, **kw)
        self._writer.set_codec(name, codec)

    def register_derived(self, name: str, fn: Callable[..., Any], inputs: Sequence[str], *,
                         recipe: Any = None, set: Callable[[Any], None] | None = None,
                         target: np.ndarray | None = None) -> None:
        """Register ``name`` as derived from the providers ``inputs``: versions
        store ``recipe`` (JSON; default the function's qualified name) and the
        input names, not bytes; restore recomputes ``fn(*inputs)`` and hands it
        to ``set`` and/or copies it into ``target``. Same as
        ``register(name, vlcc.DerivedProvider(fn, inputs, ...))``."""
        self.register(name, DerivedProvider(fn, inputs, recipe=recipe, set=set, target=target))

    def unregister(self, name: str) -> None:
        self._state.remove(name)
        self._writer.forget(name)

    @property
    def providers(self) -> list[str]:
        return list(self._state.providers)

    # -- checkpoint ---------------------------------------------------------------
    def checkpoint(self, step: int | None = None, message: str = "",
                   attrs: dict | None = None) -> Version:
        """Collectively capture every provider into a new version on the current
        branch and return it. Sync mode: committed when this returns. Async mode:
        returned as ``pending``; durable and visible after a later ``wait()`` (or
        any collective call that finds its flush done). Atomic either way: on a
        failure or a crash nothing partial becomes visible."""
        self._check_open()
        if self._engine.pending:
            self._progress(block=False)
        t0 = time.time()
        holder: dict = {}
        is_async = self.mode == "async"

        def capture():
            if not self._state.providers:
                raise ProviderError("nothing to checkpoint: no provider is registered")
            if step is not None and not isinstance(step, (int, np.integer)):
                raise VlccError(f"step must be an int, got {type(step).__name__}")
            leaves = self._state.capture(copy=is_async,
                                         alloc=self._engine.memory.take if is_async else None)
            holder["leaves"] = leaves
            return [(l.name, l.describe()) for l in leaves]

        def decide(descs):
            validate_leaves(descs)
            holder["all_descs"] = descs
            # gc never runs while this is held: the parent's chunks this
            # version will reference stay (vlcc/repo/gc.py). Async: held until
            # the version is committed or abandoned.
            holder["lock"] = acquire_writer_lock(self.layout)
            try:
                json.dumps(attrs or {})
            except (TypeError, ValueError) as exc:
                raise VlccError(f"attrs must be JSON-serializable: {exc}") from None
            return repo_layout.new_version_id()

        try:
            vid = gather_decide(self.comm, capture, decide)
        except Exception:
            release_lock(holder.pop("lock", None))
            raise
        lock = holder.pop("lock", None)
        pend = Pending(vid=vid, parent=self.parent, branch=self.branch_name,
                       step=None if step is None else int(step), message=message or "",
                       attrs=dict(attrs or {}), t0=t0, leaves=holder.pop("leaves"),
                       all_descs=holder.pop("all_descs", None))
        try:
            if self._compare is not None:   # core hook: compare_to (collective; notes pend.attrs)
                self._compare.check(pend)
            pend.plan = self._writer.prepare(self.comm, self._dedup_parent(), pend.leaves)
        except Exception:
            self._writer.abort()
            release_lock(lock)
            raise
        if is_async:
            self._writer.detach_plan()
            pend.lock = lock
            try:
                self._engine.submit(pend)   # may wait for memory (back-pressure)
            except BaseException:
                release_lock(lock)
                raise
            self.parent = vid
            v = Version.from_manifest(self._provisional(pend))
            self.last_version = v
            if self._compare is not None:   # core hook: on_diverge="raise"
                self._compare.raise_if_diverged()
            return v

        try:
            doc = gather_decide(self.comm, lambda: self._writer.write(vid),
                                lambda results: self._commit(pend, results))
        except Exception:
            self._writer.abort()
            if self.rank == 0 and not os.path.exists(self.layout.manifest(vid)):
                shutil.rmtree(self.layout.data_dir(vid), ignore_errors=True)
            raise
        finally:
            release_lock(lock)
        self._writer.committed(vid)
        v = Version.from_manifest(doc)
        self.parent = vid
        self.last_version = v
        if self._compare is not None:   # core hook: on_diverge="raise"
            self._compare.raise_if_diverged()
        return v

    def _dedup_parent(self) -> str | None:
        """The version whose chunks this one may reference: the parent, unless it
        is still being flushed (async), then the newest version already flushed."""
        pending = {p.vid for p in self._engine.pending}
        if self.parent not in pending:
            return self.parent
        return self._writer.last_written()

    def _flush_write(self, layout, pend: Pending) -> dict:
        """Runs in the engine's flusher thread: no MPI here."""
        res = write_rank(layout, pend.vid, self.rank, pend.plan)
        self._writer.note_written(pend.vid, pend.plan)
        pend.leaves = []   # the memory tier holds them for restore
        pend.plan = None
        return res

    def _commit(self, pend: Pending, results: list[dict]) -> dict:
        """Rank 0: write the manifest (the commit point), then move the branch."""
        doc = self._manifest(pend, results)
        atomic_write(self.layout.manifest(pend.vid), seal(doc))
        refs.set_branch(self.layout, pend.branch, pend.vid)
        return doc

    def _provisional(self, pend: Pending) -> dict:
        return {"vlcc_manifest": MANIFEST_VERSION, "id": pend.vid, "parent": pend.parent,
                "branch": pend.branch, "step": pend.step, "message": pend.message,
                "time": pend.t0, "nranks": self.size, "attrs": pend.attrs, "hosts": [],
                "slurm": slurm_info(), "run": {}, "providers": {}, "pending": True}

    def _progress(self, block: bool) -> list[dict]:
        """Collective: commit, in order, the pending versions every rank has
        flushed (all of them with ``block``). A failed flush on any rank
        abandons every pending version and raises on all ranks."""
        eng = self._engine
        pend = list(eng.pending)

        def decide(all_):
            k = min(len(done) for done, _ in all_)
            docs = [self._commit(pend[i], [all_[r][0][i] for r in range(self.size)])
                    for i in range(k)]
            errs = [f"rank {r}: {e}" for r, (_, e) in enumerate(all_) if e]
            return docs, errs
        docs, errs = gather_decide(self.comm, lambda: eng.flushed_prefix(block), decide)
        for doc in docs:
            release_lock(eng.pending.pop(0).lock)
            if self.last_version is None or self.last_version.id == doc["id"]:
                self.last_version = Version.from_manifest(doc)   # no longer pending
        if errs:
            for p in eng.pending:
                release_lock(p.lock)
            abandoned = eng.abandon_pending()
            if self.rank == 0:
                for vid in abandoned:
                    shutil.rmtree(self.layout.data_dir(vid), ignore_errors=True)
            self.parent = docs[-1]["id"] if docs else (pend[0].parent if pend else self.parent)
            raise StorageError(f"asynchronous flush failed ({errs[0]}); versions "
                               f"{', '.join(abandoned)} were abandoned, committed versions are intact")
        return docs

    def _manifest(self, pend: Pending, results: list[dict]) -> dict:
        vid, all_descs = pend.vid, pend.all_descs
        providers: dict[str, dict] = {}
        for name, d in all_descs[0]:
            e = {k: v for k, v in d.items() if k not in ("offset", "shape")}
            if d["kind"] != "distributed":
                e["shape"] = d["shape"]
            e["blocks"] = []
            providers[name] = e
        for rank, res in enumerate(results):
            for name, d in all_descs[rank]:
                s = res["leaves"][name]
                b = {"rank": rank, "shape": d["shape"], "nbytes": s["nbytes"], "digest": s["digest"]}
                if d["kind"] == "distributed":
                    b["offset"] = d["offset"]
                if "pack" in s:
                    b["pack"] = s["pack"]
                providers[name]["blocks"].append(b)
        for e in providers.values():
            e["replicated"] = len({b["digest"] for b in e["blocks"]}) == 1 and \
                len({tuple(b["shape"]) for b in e["blocks"]}) == 1
        return {
            "vlcc_manifest": MANIFEST_VERSION, "id": vid, "parent": pend.parent,
            "branch": pend.branch, "step": pend.step,
            "message": pend.message, "time": pend.t0, "nranks": self.size,
            "attrs": pend.attrs, "hosts": sorted({r["host"] for r in results}),
            "slurm": slurm_info(),
            "run": {"vlcc": __version__, "python": sys.version.split()[0],
                    "mode": self.mode, "seconds": round(time.time() - pend.t0, 6),
                    "chunk_size": self.chunk_size},
            "providers": providers,
            "ranks": [{"rank": i, "index": r["index"], "index_checksum": r["index_checksum"],
                       "host": r["host"]} for i, r in enumerate(results)],
        }

    def wait(self, version: Version | str | None = None) -> list[Version]:
        """Collective. Block until every pending version (async mode) is durable
        on persistent storage and committed; returns the versions committed now.
        (``version`` is accepted for symmetry: versions commit in order, so
        waiting for one means waiting for those before it; all are waited for.)
        In sync mode everything is committed already and this returns []."""
        self._check_open()
        if not self._engine.pending:
            return []
        return [Version.from_manifest(d) for d in self._progress(block=True)]

    def plan(self, versions: Sequence[Version | str | int]) -> list[str]:
        """Collective. Declare the order in which versions will be restored next
        (an adjoint backward pass, a replay): versions, ids, specs or steps (an
        int is the newest version with that step on the current branch). The
        memory tier then evicts the version used farthest in the future
        (Belady) and prefetches the next ones in the background."""
        self.wait()
        specs = [v.id if isinstance(v, Version) else v for v in versions]

        def resolve():
            by_step = {}
            if any(isinstance(x, (int, np.integer)) for x in specs):
                for v in reversed(self._repo.log(self.branch_name)):
                    if v.step is not None:
                        by_step[v.step] = v.id
            out = []
            for x in specs:
                if isinstance(x, (int, np.integer)):
                    if int(x) not in by_step:
                        raise NotFoundError(f"no version with step {int(x)} on branch "
                                            f"{self.branch_name!r} of {self.path}")
                    out.append(by_step[int(x)])
                else:
                    out.append(self._repo.resolve(x).id)
            return out
        vids = root_only(self.comm, resolve)
        self._engine.memory.set_plan(vids)
        self._prefetch_upcoming()
        return vids

    @property
    def stats(self) -> dict:
        """This rank's engine counters: memory-tier hits/misses/prefetches,
        evictions, back-pressure waits, peak bytes, pending versions."""
        m = self._engine.memory
        return m.stats.as_dict() | {"memory_used": m.used, "memory_budget": m.budget,
                                    "pending": len(self._engine.pending), "mode": self.mode,
                                    # of those, still being written (local, non-blocking test)
                                    "unflushed": sum(not p.future.done() for p in self._engine.pending)}

    def _prefetch_upcoming(self) -> None:
        eng = self._engine
        est = max(1, sum(p.array.nbytes for p in self._state.providers.values()
                         if isinstance(p, ArrayProvider)))
        depth = max(1, eng.memory.budget // est - 1)
        eng.prefetch(eng.memory.upcoming(depth), self._load_for_memory)

    def _load_for_memory(self, vid: str):
        """Prefetcher thread: read what this rank's providers need from ``vid``
        into fresh buffers (no MPI). Returns (leaves by name, bytes)."""
        doc = load_manifest(self.layout.manifest(vid), vid, self.path)
        reader = VersionReader(self.layout, doc, faster=self._engine.faster_layouts)
        leaves, nbytes = {}, 0
        try:
            for name, e in doc["providers"].items():
                owner = e.get("of") or name
                p = self._state.providers.get(owner)
                if p is None:
                    continue
                dt = np.dtype(e["dtype"]) if e["kind"] != "value" else None
                if e["kind"] == "distributed":
                    if not isinstance(p, ArrayProvider) or p.kind != "distributed":
                        continue
                    out = np.empty(p.owned_shape, dt)
                    reader.read_box(name, out, p.offset)
                    leaf = Leaf(name, "distributed", e["dtype"], p.owned_shape, tuple(e["global_shape"]),
                                p.offset, of=e.get("of"), data=out.reshape(-1).view(np.uint8))
                else:
                    block = reader.pick_rank_block(name, self.rank, self.size)
                    data = reader.read_block(name, block)
                    leaf = Leaf(name, e["kind"], e["dtype"], tuple(block["shape"]), of=e.get("of"),
                                data=data)
                    if e["kind"] == "derived":
                        leaf.extra = {"recipe": e.get("recipe"), "inputs": e.get("inputs")}
                leaves[name] = leaf
                nbytes += leaf.data.nbytes
        finally:
            reader.close()
        return leaves, nbytes

    def _fits(self, entry) -> bool:
        """Can the memory-tier entry fill every registered provider as is?"""
        if entry is None:
            return False
        for name, p in self._state.providers.items():
            if isinstance(p, ArrayProvider):
                leaf = entry.leaves.get(name)
                if (leaf is None or leaf.kind != p.kind or np.dtype(leaf.dtype) != p.array.dtype
                        or tuple(leaf.shape) != tuple(p.owned_shape)
                        or (p.kind == "distributed" and tuple(leaf.offset) != tuple(p.offset))):
                    return False
            elif not any(l.name == name or l.of == name for l in entry.leaves.values()):
                return False
        return True

    # -- restore ------------------------------------------------------------------
    def restore(self, version: Version | str | None = None, *, strict: bool = True) -> Version:
        """Collectively restore every registered provider from ``version``
        (default: newest of the current branch; also an id, ``tag:NAME``,
        ``branch:NAME``). Works on another rank count for distributed arrays.
        With ``strict`` (default) a stored provider that is not registered is an
        error; otherwise it is ignored. The restored version becomes the parent
        of the next checkpoint."""
        self._check_open()
        eng = self._engine
        spec = version.id if isinstance(version, Version) else version
        pend = {p.vid: p for p in eng.pending}
        target = None
        if spec in (None, "latest") and eng.pending and eng.pending[-1].branch == self.branch_name:
            target = eng.pending[-1].vid
        elif isinstance(spec, str) and spec in pend:
            target = spec
        if target is not None:
            # A pending version: from memory if every rank still holds it there,
            # else once it is durable (the pending lists are the same on all ranks).
            if self.comm.allreduce(int(self._fits(eng.memory.get(target))), op=MPI_MIN()):
                return self._restore_from_memory(target, Version.from_manifest(
                    self._provisional(pend[target])), strict)
            self._progress(block=True)
            spec = target

        def resolve():
            v = self._repo.resolve(spec, branch=self.branch_name if spec in (None, "latest") else None)
            return v.manifest
        manifest = root_only(self.comm, resolve)
        v = Version.from_manifest(manifest)
        eng.wait_prefetch(v.id)
        if self.comm.allreduce(int(self._fits(eng.memory.get(v.id))), op=MPI_MIN()):
            return self._restore_from_memory(v.id, v, strict)
        eng.memory.record_access(v.id, hit=False)
        where = f"version {v.id}"
        stored = v.providers
        agree(self.comm, lambda: self._check_stored(stored, where, strict))

        reader = VersionReader(self.layout, manifest, faster=eng.faster_layouts)

        def read(name, out):
            e = stored[name]
            if e["kind"] == "distributed":
                p = self._state.providers[name]
                assert isinstance(p, ArrayProvider)
                return reader.read_box(name, out, p.offset)
            if e["kind"] == "value":
                return reader.read_value(name, self.rank, self.size)
            return reader.read_array(name, out, self.rank, self.size)

        def do_restore():
            try:
                for p in self._state.restore_order():
                    p.restore_leaves(stored, read)
            finally:
                reader.close()
        agree(self.comm, do_restore)
        return self._restored(v)

    def _restored(self, v: Version) -> Version:
        self.parent = v.id
        self.last_version = v
        self._engine.memory.advance(v.id)
        self._prefetch_upcoming()
        return v

    def _check_stored(self, stored: dict, where: str, strict: bool) -> None:
        for p in self._state.providers.values():
            p.check_restore(stored, where)
        for n, e in stored.items():
            owner = e.get("of") or n
            if (owner in self._state.providers and e["kind"] != "distributed"
                    and len(e["blocks"]) != self.size and not e.get("replicated")):
                raise ShapeMismatchError(
                    f"provider {n!r} of {where} is per-rank data written on {len(e['blocks'])} "
                    f"ranks with different content per rank; it cannot be restored on "
                    f"{self.size} ranks (register it as a distributed array for N→M restart)")
        if strict:
            extra = {e.get("of") or n for n, e in stored.items()} - set(self._state.providers)
            if extra:
                raise MissingProviderError(
                    f"{where} has providers that are not registered: {', '.join(sorted(extra))} "
                    f"(register them, or restore(..., strict=False) to ignore them)")

    def _restore_from_memory(self, vid: str, v: Version, strict: bool) -> Version:
        entry = self._engine.memory.get(vid)
        stored = {name: leaf.describe() | {"blocks": [None] * self.size, "replicated": False}
                  for name, leaf in entry.leaves.items()}
        where = f"version {vid} (memory tier)"

        def read(name, out):
            leaf = entry.leaves[name]
            if out is None:
                return pickle.loads(leaf.data.tobytes())
            src = leaf.data.view(np.dtype(leaf.dtype)).reshape(leaf.shape)
            if src.shape != out.shape:
                raise ShapeMismatchError(f"provider {name!r}: {where} has shape {src.shape}, "
                                         f"target {out.shape}")
            out[...] = src
            return out

        def do_restore():
            self._check_stored(stored, where, strict)
            for p in self._state.restore_order():
                p.restore_leaves(stored, read)
        agree(self.comm, do_restore)
        self._engine.memory.record_access(vid, hit=True)
        return self._restored(v)

    # -- refs ----------------------------------------------------------------------
    def _resolve_id(self, at) -> str:
        if at is None:
            if self.parent is None:
                raise VlccError(f"branch {self.branch_name!r} has no version yet")
            return self.parent
        return self._repo.resolve(at.id if isinstance(at, Version) else at).id

    def branch(self, name: str, at: Version | str | None = None) -> Version:
        """Create branch ``name`` at version ``at`` (default: the current parent).
        Collective. Does not switch to it (see :meth:`switch`)."""
        self.wait()   # a ref may only name a committed version

        def make():
            vid = self._resolve_id(at)
            refs.create_ref(self.layout, "branch", name, vid)
            return self._repo.resolve(vid).manifest
        return Version.from_manifest(root_only(self.comm, make))

    def switch(self, name: str, *, create: bool = False) -> None:
        """Write the next versions on branch ``name``; the next version's parent
        is that branch's newest version. Collective."""
        self._check_open()

        def look():
            repo_layout.check_ref_name(name, "branch")
            if refs.read_ref(self.layout, "branch", name) is None:
                if not create:
                    refs.require_ref(self.layout, "branch", name)
                refs.check_free(self.layout, "branch", name)  # fail now, not at the next commit
                return self.parent
            return self._repo.branch_head(name)
        self.parent = root_only(self.comm, look)
        self.branch_name = name

    def tag(self, name: str, version: Version | str | None = None) -> None:
        """Fix tag ``name`` on a version (default: the current parent). Collective."""
        self.wait()
        root_only(self.comm, lambda: refs.create_ref(self.layout, "tag", name, self._resolve_id(version)))

    def log(self, branch: str | None = None) -> list[Version]:
        """Versions newest first (see Repository.log). Collective (read on rank 0)."""
        self._check_open()
        ms = root_only(self.comm, lambda: [v.manifest for v in self._repo.log(branch)])
        return [Version.from_manifest(m) for m in ms]

    def close(self) -> None:
        """Commit what is pending (async), stop the engine's threads, release
        the communicator. Collective; idempotent."""
        if self._closed:
            return
        try:
            self.wait()
        finally:
            self._closed = True
            self._engine.close()
            try:
                self.comm.Free()
            except Exception:
                pass
