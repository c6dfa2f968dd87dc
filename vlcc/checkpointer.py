"""Checkpointer: the collective, public face of vlcc (one per communicator).

Checkpoint protocol (docs/architecture.md):
  1. capture + describe (every rank) → gather on rank 0 → validate, new id → bcast
  2. write this rank's chunks + index, fsync (every rank)  → gather on rank 0 →
     manifest by atomic rename (the commit point), branch ref moved → bcast
Every step goes through commit.protocol so a failure on one rank is raised on all.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
from typing import Any, Callable, Sequence

import numpy as np

from . import __version__
from .commit.protocol import agree, gather_decide, root_only
from .commit.validate import validate_leaves
from .errors import MissingProviderError, ProviderError, ShapeMismatchError, VlccError
from .io.rankwrite import write_rank
from .layout.chunking import DEFAULT_CHUNK_SIZE
from .repo import layout as repo_layout
from .repo import refs
from .repo.fsutil import atomic_write
from .repo.manifest import MANIFEST_VERSION, Version, seal
from .repo.repository import Repository
from .restore.reader import VersionReader
from .state.array import ArrayProvider
from .state.registry import State


def _default_comm():
    from mpi4py import MPI
    return MPI.COMM_WORLD


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
    mode:        ``"sync"`` (default): ``checkpoint()`` returns once the version is committed.
    chunk_size:  bytes per chunk (integrity/dedup unit).
    """

    def __init__(self, path: str | os.PathLike, comm=None, *, branch: str = "main",
                 mode: str = "sync", chunk_size: int = DEFAULT_CHUNK_SIZE, create: bool = True):
        if mode not in ("sync",):
            raise VlccError(f"unknown mode {mode!r}: this vlcc supports mode='sync'")
        if int(chunk_size) <= 0:
            raise VlccError(f"chunk_size must be a positive number of bytes, got {chunk_size}")
        base = comm if comm is not None else _default_comm()
        self.comm = base.Dup()
        self.rank, self.size = self.comm.rank, self.comm.size
        self.path = os.path.abspath(os.fspath(path))
        self.mode, self.chunk_size = mode, int(chunk_size)
        self.layout = repo_layout.Layout(self.path)
        self._state = State()
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
        self.branch_name = branch
        self.parent: str | None = head
        self.last_version: Version | None = None

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
    def repository(self) -> Repository:
        return Repository(self.path)

    # -- providers ----------------------------------------------------------------
    def register(self, name: str, obj: Any, *, global_shape: Sequence[int] | None = None,
                 offset: Sequence[int] | None = None, halo: int | Sequence[int] = 0,
                 on_restore: Callable[[np.ndarray], None] | None = None) -> None:
        """Register a provider under ``name`` (local, not collective; every rank
        must register the same names before the next checkpoint).

        ``obj`` is a numpy array (with ``global_shape``/``offset``/``halo`` for
        a block of a distributed array; ``on_restore(array)`` may refresh halos),
        a :class:`vlcc.ValueProvider`, or any object with ``capture()``/``restore()``."""
        self._check_open()
        kw = {}
        if isinstance(obj, np.ndarray):
            kw = dict(global_shape=global_shape, offset=offset, halo=halo, on_restore=on_restore)
        elif global_shape is not None or offset is not None or halo or on_restore:
            raise ProviderError(f"provider {name!r}: global_shape/offset/halo/on_restore apply "
                                f"to numpy arrays only")
        self._state.add(name, obj, **kw)

    def unregister(self, name: str) -> None:
        self._state.remove(name)

    @property
    def providers(self) -> list[str]:
        return list(self._state.providers)

    # -- checkpoint ---------------------------------------------------------------
    def checkpoint(self, step: int | None = None, message: str = "",
                   attrs: dict | None = None) -> Version:
        """Collectively capture every provider into a new committed version on
        the current branch; returns it. Atomic: on any failure nothing becomes visible."""
        self._check_open()
        t0 = time.time()
        holder: dict = {}

        def capture():
            if not self._state.providers:
                raise ProviderError("nothing to checkpoint: no provider is registered")
            if step is not None and not isinstance(step, (int, np.integer)):
                raise VlccError(f"step must be an int, got {type(step).__name__}")
            leaves = self._state.capture(copy=False)
            holder["leaves"] = leaves
            return [(l.name, l.describe()) for l in leaves]

        def decide(descs):
            validate_leaves(descs)
            holder["all_descs"] = descs
            import json
            try:
                json.dumps(attrs or {})
            except (TypeError, ValueError) as exc:
                raise VlccError(f"attrs must be JSON-serializable: {exc}") from None
            return repo_layout.new_version_id()

        vid = gather_decide(self.comm, capture, decide)
        leaves = holder["leaves"]

        def write():
            return write_rank(self.layout, vid, self.rank, leaves, self.chunk_size)

        def commit(results):
            doc = self._manifest(vid, step, message, attrs, holder["all_descs"], results, t0)
            atomic_write(self.layout.manifest(vid), seal(doc))
            refs.set_branch(self.layout, self.branch_name, vid)
            return doc

        try:
            doc = gather_decide(self.comm, write, commit)
        except Exception:
            if self.rank == 0 and not os.path.exists(self.layout.manifest(vid)):
                shutil.rmtree(self.layout.data_dir(vid), ignore_errors=True)
            raise
        finally:
            holder.clear()
        v = Version.from_manifest(doc)
        self.parent = vid
        self.last_version = v
        return v

    def _manifest(self, vid, step, message, attrs, all_descs, results, t0) -> dict:
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
                providers[name]["blocks"].append(b)
        for e in providers.values():
            e["replicated"] = len({b["digest"] for b in e["blocks"]}) == 1 and \
                len({tuple(b["shape"]) for b in e["blocks"]}) == 1
        return {
            "vlcc_manifest": MANIFEST_VERSION, "id": vid, "parent": self.parent,
            "branch": self.branch_name, "step": None if step is None else int(step),
            "message": message or "", "time": time.time(), "nranks": self.size,
            "attrs": attrs or {}, "hosts": sorted({r["host"] for r in results}),
            "slurm": slurm_info(),
            "run": {"vlcc": __version__, "python": sys.version.split()[0],
                    "seconds": round(time.time() - t0, 6), "chunk_size": self.chunk_size},
            "providers": providers,
            "ranks": [{"rank": i, "index": r["index"], "index_checksum": r["index_checksum"],
                       "host": r["host"]} for i, r in enumerate(results)],
        }

    def wait(self, version: Version | str | None = None) -> None:
        """Block until the version is durable on persistent storage (sync mode:
        it already is when checkpoint() returns)."""
        self._check_open()

    # -- restore ------------------------------------------------------------------
    def restore(self, version: Version | str | None = None, *, strict: bool = True) -> Version:
        """Collectively restore every registered provider from ``version``
        (default: newest of the current branch; also an id, ``tag:NAME``,
        ``branch:NAME``). Works on another rank count for distributed arrays.
        With ``strict`` (default) a stored provider that is not registered is an
        error; otherwise it is ignored. The restored version becomes the parent
        of the next checkpoint."""
        self._check_open()
        spec = version.id if isinstance(version, Version) else version

        def resolve():
            v = self._repo.resolve(spec, branch=self.branch_name if spec in (None, "latest") else None)
            return v.manifest
        manifest = root_only(self.comm, resolve)
        v = Version.from_manifest(manifest)
        where = f"version {v.id}"
        stored = v.providers

        def check():
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
                mine = set()
                for n, e in stored.items():
                    owner = e.get("of") or n
                    if owner not in self._state.providers:
                        mine.add(owner)
                if mine:
                    raise MissingProviderError(
                        f"{where} has providers that are not registered: {', '.join(sorted(mine))} "
                        f"(register them, or restore(..., strict=False) to ignore them)")
        agree(self.comm, check)

        reader = VersionReader(self.layout, manifest)

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
                for p in self._state.providers.values():
                    p.restore_leaves(stored, read)
            finally:
                reader.close()
        agree(self.comm, do_restore)
        self.parent = v.id
        self.last_version = v
        return v

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
        self._check_open()

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
                return self.parent
            return self._repo.branch_head(name)
        self.parent = root_only(self.comm, look)
        self.branch_name = name

    def tag(self, name: str, version: Version | str | None = None) -> None:
        """Fix tag ``name`` on a version (default: the current parent). Collective."""
        self._check_open()
        root_only(self.comm, lambda: refs.create_ref(self.layout, "tag", name, self._resolve_id(version)))

    def log(self, branch: str | None = None) -> list[Version]:
        """Versions newest first (see Repository.log). Collective (read on rank 0)."""
        self._check_open()
        ms = root_only(self.comm, lambda: [v.manifest for v in self._repo.log(branch)])
        return [Version.from_manifest(m) for m in ms]

    def close(self) -> None:
        """Release the communicator. Collective; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self.comm.Free()
        except Exception:
            pass
