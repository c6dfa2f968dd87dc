"""Checkpointer: the collective, public face of vlcc (one per communicator).

A thin layer in the manner of h5py's high-level classes: each method checks
its arguments and hands the work to the module that owns it —
``commit/checkpoint.py`` (the collective checkpoint and async commits),
``restore/collective.py`` (the collective restore), ``comm/protocol.py``
(every collective call), ``repo/`` (refs). All of them share one
``commit.session.Session``."""

from __future__ import annotations

import os
from typing import Any, Callable, Collection, Sequence

import numpy as np

from .commit import checkpoint as _ckpt
from .commit import refmoves as _refs
from .comm.protocol import agree, interrupted, private, root_only
from .commit.rankwrite import RankWriter
from .commit.session import Session
from .encode import get_codec
from .engine.config import EngineConfig
from .engine.engine import Engine
from .errors import ArgumentError, ProviderError, VlccError
from .layout.chunking import DEFAULT_CHUNK_SIZE
from .layout.coalesce import DEFAULT_COALESCE_BELOW
from .repo import config as repo_config
from .repo.manifest import Version
from .repo.paths import RepoPaths, check_ref_name
from .repository import Repository
from .restore import collective as _restore
from .restore import prefetch as _prefetch
from .state.derived import DerivedProvider
from .state.registry import State


def _default_comm():
    from .comm.serial import default_comm   # COMM_WORLD under a launcher, else one rank, no MPI
    return default_comm()


def session(ck: "Checkpointer") -> Session:
    """The internal interface under a Checkpointer, for the packages built on it
    that need more than the public API (``vlcc.adjoint`` snapshots the registered
    providers, ``vlcc.capi`` evicts node-local copies): its ``commit.session.Session``.
    Not part of the public API (``vlcc/__init__.py`` does not export it)."""
    return ck._s


def _check_args(chunk_size, coalesce_below, if_moved: str, branch: str) -> None:
    if int(chunk_size) <= 0:
        raise ArgumentError(f"chunk_size must be a positive number of bytes, got {chunk_size}")
    if int(coalesce_below) < 0:
        raise ArgumentError(f"coalesce_below must be >= 0 bytes (0 disables), got {coalesce_below}")
    if if_moved not in ("rebase", "fail"):
        raise ArgumentError(f"if_moved must be 'rebase' or 'fail', got {if_moved!r}")
    check_ref_name(branch, "branch")


class Checkpointer:
    """Collective checkpoint/restore of registered providers into a repository.

    Parameters
    ----------
    path:        repository directory; created (collectively) when missing or empty. A non-empty
                 non-repository is refused unless ``create=True``; ``create=False`` never creates.
    comm, branch: communicator (``MPI.COMM_WORLD``; vlcc uses a duplicate); branch (``"main"``).
    mode:        ``"sync"`` (default): ``checkpoint()`` returns once the version is committed;
                 ``"async"``: once the providers are copied into the memory tier; background
                 threads write local → persistent; the version is committed at a later
                 collective call (``checkpoint``, ``wait``, ``restore``, ``close``).
    memory_budget: bytes (or "512MiB") of the memory tier per rank (default 1 GiB,
                 env ``VLCC_MEMORY_BUDGET``); async checkpoints wait when it is full.
    local_dir:   node-local tier (env ``VLCC_LOCAL_DIR``; ``"none"``: off). Given: async
                 versions go through it. Default: /dev/shm, for spill only (engine/config.py).
    chunk_size:  bytes per chunk (integrity/dedup unit).
    dedup:       store a chunk only if neither the parent version (same rank) nor a lower rank
                 of this version already stores it (default True).
    track_dirty: keep a copy of the last capture and hash only changed chunks (Numba compare
                 kernel; costs one copy of the state in memory).
    coalesce_below: leaves smaller than this many bytes (default 64 KiB; 0 disables)
                 are packed into one per-rank buffer before chunking (docs/format.md 3.1).
    if_moved:    another writer moved the branch: ``"rebase"`` (default) the new version onto
                 the new head, or ``"fail"`` with ``BranchMovedError`` (docs/format.md, section 5).
    redundancy/group_size/persist: a node-local tier that survives node loss (engine/config.py).
    compare_to:  ``"PATH[@BRANCH]"`` of a reference run: each checkpoint is compared with
                 its version of the same step within ``rtol``/``atol``; the first divergence
                 is recorded in the version (``attrs["divergence"]``) and on ``ck.divergence``;
                 ``on_diverge="raise"`` raises vlcc.DivergenceError (vlcc/tools/compare.py).
    allow_pickle: pickle values the safe format cannot hold, unpickle on restore (trusted only).
    """

    def __init__(self, path: str | os.PathLike, comm=None, *, branch: str = "main",
                 mode: str | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE,
                 create: bool | None = None, dedup: bool = True, track_dirty: bool = False,
                 coalesce_below: int = DEFAULT_COALESCE_BELOW, allow_pickle: bool = False,
                 memory_budget: int | str | None = None, local_dir: str | None = None,
                 if_moved: str = "rebase", compare_to: str | None = None, rtol: float = 0.0,
                 atol: float = 0.0, on_diverge: str = "record", redundancy: str | None = None,
                 group_size: int | None = None, persist: str | float | None = None):
        cfg = EngineConfig.resolve(mode, memory_budget, local_dir, redundancy, group_size, persist)
        _check_args(chunk_size, coalesce_below, if_moved, branch)
        comm = private(comm if comm is not None else _default_comm())
        paths = RepoPaths(os.path.abspath(os.fspath(path)))
        writer = RankWriter(paths, comm.rank, int(chunk_size), size=comm.size, dedup=dedup,
                            track_dirty=track_dirty, coalesce_below=int(coalesce_below))
        self._s = s = Session(comm, paths, cfg.mode, int(chunk_size), State(allow_pickle), writer,
                              engine=None, catalog=None, if_moved=if_moved)
        self._closed = False

        def open_repo():
            if create is not False:
                repo_config.create(paths, force=bool(create))
            repo_config.upgrade(paths)    # reads it: must be a repository by now
            s.catalog = Repository(paths.root)
            return s.catalog.branch_head(branch)
        try:
            s.opened(branch, root_only(comm, open_repo))
            s.flush_comm = _ckpt.flusher_comm(comm, cfg)   # collective, once (or None)
            nodes = _ckpt.node_local_nodes(comm, cfg, s.flush_comm)
            s.engine = agree(comm, lambda: Engine(cfg, paths, comm.rank,
                                                  lambda p, store: _ckpt.flush(s, p, store), nodes))
            _ckpt.attach_stage(comm, s.engine)
            _ckpt.bind_flusher(s)
        except BaseException:
            s.release_comms()
            raise
        # core hook (tools): reference-run comparison and `vlcc replay` (vlcc/tools/).
        from .tools.compare import Comparator
        from .tools.replay import apply_env
        try:
            s.compare = None if compare_to is None else Comparator(
                comm, compare_to, rtol=rtol, atol=atol, on_diverge=on_diverge, allow_pickle=allow_pickle)
            apply_env(self)
        except BaseException:
            self.close()
            raise

    # -- read-only views -------------------------------------------------------------
    comm = property(lambda self: self._s.comm)
    rank = property(lambda self: self._s.rank)
    size = property(lambda self: self._s.size)
    path = property(lambda self: self._s.paths.root)
    mode = property(lambda self: self._s.mode)
    chunk_size = property(lambda self: self._s.chunk_size)
    branch_name = property(lambda self: self._s.branch)
    parent = property(lambda self: self._s.parent,   # settable: vlcc/adjoint rewinds lineage
                      lambda self, vid: self._s.rewound(vid))
    last_version = property(lambda self: self._s.last_version)

    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, *exc) -> None:
        interrupted(self._s.comm, exc[1])     # SIGINT out of step with the other ranks: end the job
        self.close()

    def __repr__(self) -> str:
        return f"vlcc.Checkpointer({self.path!r}, branch={self.branch_name!r}, rank={self.rank}/{self.size})"

    def _check_open(self):
        if self._closed:
            raise VlccError(f"Checkpointer for {self.path} is closed")

    @property
    def divergence(self) -> dict | None:
        """The first divergence from the ``compare_to`` reference run (None while equal)."""
        return None if self._s.compare is None else self._s.compare.first

    @property
    def repository(self) -> Repository:
        return Repository(self.path)

    # -- providers ---------------------------------------------------------------------
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
        Lossy compression only by an explicit ``{"id": "zfp", "tolerance": E}``
        (float leaves then restore within ``E``). See docs/format.md, section 10."""
        self._check_open()
        kw = {}
        if isinstance(obj, np.ndarray):
            kw = dict(global_shape=global_shape, offset=offset, halo=halo, on_restore=on_restore)
        elif global_shape is not None or offset is not None or halo or on_restore:
            raise ProviderError(f"provider {name!r}: global_shape/offset/halo/on_restore apply "
                                f"to numpy arrays only")
        codec = None if compress in (None, False) else get_codec("zstd" if compress is True else compress)
        p = self._s.state.add(name, obj, **kw)
        self._s.writer.set_codec(name, codec)
        _ckpt.registered(self._s, p)

    def register_derived(self, name: str, fn: Callable[..., Any], inputs: Sequence[str], *,
                         recipe: Any = None, set: Callable[[Any], None] | None = None,
                         target: np.ndarray | None = None) -> None:
        """Register ``name`` as ``fn(*inputs)``: versions store ``recipe`` and the
        input names, not bytes; restore recomputes it (docs/format.md 3.2)."""
        self.register(name, DerivedProvider(fn, inputs, recipe=recipe, set=set, target=target))

    def unregister(self, name: str) -> None:
        self._s.state.remove(name)
        self._s.writer.forget(name)

    @property
    def providers(self) -> list[str]:
        return list(self._s.state.providers)

    # -- versions ------------------------------------------------------------------------
    def checkpoint(self, step: int | None = None, message: str = "",
                   attrs: dict | None = None, *, lazy: bool | Collection[str] = False) -> Version:
        """Collectively capture every provider into a new version on the current
        branch. Sync mode: committed when this returns. Async mode: returned as
        ``pending``, committed at a later collective call. Atomic either way.
        ``lazy`` (async): the arrays named (True: all) are copied after this
        returns; do not modify them before :meth:`settle` (e.g. the optimizer
        step). Without flusher collectives (``VLCC_FLUSH_MPI``) they are copied at once."""
        self._check_open()
        return _ckpt.checkpoint(self._s, step, message, attrs,
                                lazy=(True if lazy is True else frozenset(lazy or ())) or None)

    def settle(self) -> None:
        """Local. Block until lazy captures are copied (checkpoint, wait and
        restore settle first by themselves)."""
        self._check_open()
        self._s.engine.settle()

    def wait(self) -> list[Version]:
        """Collective. Block until every pending version (async mode) is durable
        and committed; returns the versions committed now ([] in sync mode)."""
        self._check_open()
        if not self._s.engine.pending:
            return []
        return [Version.from_manifest(d) for d in _ckpt.progress(self._s, block=True)]

    def restore(self, version: Version | str | None = None, *, strict: bool = True,
                atomic: bool | None = None, allow_pickle: bool | None = None) -> Version:
        """Collectively restore every registered provider from ``version``
        (default: newest of the current branch; or any spec of vlcc/repo/spec.py:
        id, ``tag:NAME``, ``step:N``, ...); N→M aware. ``strict``: a stored provider
        not registered is an error. The restored version is the next parent. All-or-nothing: every rank first reads and checks everything into
        staging memory, and only then copies it in and runs the callbacks (whose
        own errors cannot be undone). ``atomic=False`` reads straight into the
        arrays (fastest, no second copy; a damaged chunk may leave providers
        partly restored); ``None`` stages unless that would exceed half the
        available memory (then direct, with a RuntimeWarning). ``allow_pickle``
        (default: the Checkpointer's) unpickles values stored as pickles."""
        self._check_open()
        self._s.engine.settle()        # restore writes into the arrays a lazy capture reads
        return _restore.restore(self._s, version, strict, atomic, allow_pickle)

    def plan(self, versions: Sequence[Version | str | int]) -> list[str]:
        """Collective. Declare the order of the coming restores (versions, ids,
        specs, or steps on the current branch): the memory tier then evicts
        Belady-style and prefetches the next ones in the background."""
        self.wait()
        return _prefetch.plan(self._s, versions)

    @property
    def stats(self) -> dict:
        """This rank's engine counters: memory-tier hits/misses/prefetches,
        evictions, back-pressure waits, peak bytes, pending versions."""
        m = self._s.engine.memory
        pending = self._s.engine.pending
        return m.stats.as_dict() | {"memory_used": m.used, "memory_budget": m.budget,
                                    "pending": len(pending), "mode": self.mode,
                                    # of those, still being written (local, non-blocking test)
                                    "unflushed": sum(not p.future.done() for p in pending)}

    # -- refs ----------------------------------------------------------------------------
    def branch(self, name: str, at: Version | str | None = None) -> Version:
        """Create branch ``name`` at version ``at`` (default: the current parent).
        Collective. Does not switch to it (see :meth:`switch`)."""
        self.wait()   # a ref may only name a committed version
        return _refs.make_branch(self._s, name, at)

    def switch(self, name: str, *, create: bool = False) -> None:
        """Collective: write the next versions on branch ``name`` (parent: its newest version)."""
        self._check_open()
        _refs.switch(self._s, name, create)

    def tag(self, name: str, version: Version | str | None = None) -> None:
        """Fix tag ``name`` on a version (default: the current parent). Collective."""
        self.wait()
        _refs.make_tag(self._s, name, version)

    def log(self, branch: str | None = None) -> list[Version]:
        """Versions newest first (see Repository.log). Collective (read on rank 0)."""
        self._check_open()
        ms = root_only(self.comm, lambda: [v.manifest for v in self._s.catalog.log(branch)])
        return [Version.from_manifest(m) for m in ms]

    def close(self) -> None:
        """Collective, idempotent: commit what is pending, stop the engine, release the comm."""
        if self._closed:
            return
        try:
            self.wait()
        finally:
            self._closed = True
            self._s.engine.close()
            self._s.release_comms()
