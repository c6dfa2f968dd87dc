"""The node-local tier: a per-process directory (default under /dev/shm) with
the repository's relative layout, so a file can be copied between tiers under
the same relative name; and the spill space for captures the memory tier
cannot hold.

Hygiene (tmpfs is RAM), and only of what vlcc made (``local_dir`` may be a
shared scratch folder): each process directory is created exclusively and
holds a marker ``owner.json`` (repo/locks.py's record: host, pid, boot id,
plus the repository id; ``write_marker``/``read_marker``). At start, the
marked directories of dead owners are removed — in this job's base directory
and in its sibling ``vlcc-<uid>-*`` base directories (other, killed jobs);
a directory without a marker is never touched. A base directory vlcc
created holds ``.vlcc-base``; only such a base is removed once nothing but
its marker is left (at close, or when a sibling job's is reclaimed)."""

from __future__ import annotations

import itertools
import json
import mmap
import os
import re
import shutil
import socket
import threading
import time

import numpy as np

from ..errors import StorageError, storage_error
from ..repo import locks, tiermark
from ..repo.fsutil import fsync_dir, fsync_file, fsync_tree, makedirs
from ..repo.paths import RepoPaths

OWNER = "owner.json"        # the marker of a process directory; `vlcc doctor` reads it too
BASE_MARKER = ".vlcc-base"  # in a base directory vlcc created (and may remove when empty)
from .resilience.store import MARK as STORE_MARK   # node stores outlive processes   # noqa: E402


def write_marker(directory: str, repository_id: str | None, name: str = OWNER) -> None:
    """Mark ``directory`` as made by this process for repository
    ``repository_id``: a repo/locks.py record (host, pid, boot id, time) plus
    ``repository_id``. vlcc removes only directories holding such a marker."""
    doc = locks.record("local") | {"repository_id": repository_id}
    path = os.path.join(directory, name)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, json.dumps(doc).encode())
        finally:
            os.close(fd)
    except OSError as exc:
        raise storage_error(exc, f"cannot mark node-local directory {directory}") from exc


def read_marker(directory: str, name: str = OWNER) -> dict | None:
    """The marker of a directory vlcc made (see ``write_marker``), or None:
    then the directory is not vlcc's and nothing may remove it."""
    doc = locks.read(os.path.join(directory, name))
    return doc if doc is not None and doc.get("kind") == "local" and "pid" in doc else None


def _stale_dir(path: str) -> bool:
    """A marked process directory whose owner is dead (never an unmarked one)."""
    if os.path.exists(os.path.join(path, STORE_MARK)):
        return False     # a node store (engine/resilience/store.py): outlives processes
    if os.path.islink(path) or read_marker(path) is None:
        return False
    return locks.is_stale(os.path.join(path, OWNER))


def _reclaim_base(base: str) -> list[str]:
    removed = []
    try:
        names = os.listdir(base)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return removed
    for name in names:
        d = os.path.join(base, name)
        if os.path.isdir(d) and _stale_dir(d):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def _remove_base_if_unused(base: str) -> bool:
    """Remove a base directory vlcc created once only its marker is left."""
    try:
        if os.listdir(base) != [BASE_MARKER] or read_marker(base, BASE_MARKER) is None:
            return False
        os.unlink(os.path.join(base, BASE_MARKER))
        os.rmdir(base)
        return True
    except OSError:     # another process added its directory meanwhile: it keeps the base
        return False


def reclaim(base: str) -> list[str]:
    """Remove node-local directories left by dead processes of this host
    (SIGKILL, node crash) under ``base`` and, for a default base
    ``vlcc-<uid>-<job>``, under its sibling bases of other jobs (removed
    when left empty). Returns what was removed."""
    removed = _reclaim_base(base)
    parent, name = os.path.split(os.path.abspath(base))
    m = re.fullmatch(rf"vlcc-{os.getuid()}-.+", name)
    if m is None:
        return removed
    try:
        siblings = os.listdir(parent)
    except OSError:
        return removed
    for sib in siblings:
        if sib == name or not re.fullmatch(rf"vlcc-{os.getuid()}-.+", sib):
            continue
        d = os.path.join(parent, sib)
        if os.path.islink(d) or read_marker(d, BASE_MARKER) is None:
            continue                    # not a base vlcc made
        gone = _reclaim_base(d)
        removed += gone
        try:
            # not a base another job has just made and is about to fill
            fresh = time.time() - os.stat(d).st_mtime < locks.EMPTY_GRACE
        except OSError:
            continue
        if (gone or not fresh) and _remove_base_if_unused(d):
            removed.append(d)
    return removed


def _make_root(base: str, repository_id: str | None) -> str:
    """This process's directory under ``base``, created exclusively (a
    same-named directory that is not ours is left alone) and marked."""
    stem = f"{socket.gethostname()}-{os.getpid()}"
    for k in itertools.count():
        root = os.path.join(base, stem if k == 0 else f"{stem}.{k}")
        try:
            os.mkdir(root)
        except FileExistsError:
            if _stale_dir(root):        # ours from a process of the same pid before a reboot
                shutil.rmtree(root, ignore_errors=True)
            continue
        except OSError as exc:
            raise storage_error(exc, f"cannot create node-local directory {root}") from exc
        write_marker(root, repository_id)
        return root
    raise AssertionError("unreachable")


class LocalTier:
    def __init__(self, base: str, spill_budget: int = 0, repository: RepoPaths | None = None):
        self.base = base
        rid = tiermark.repository_id(repository) if repository is not None else None
        if not os.path.isdir(base):
            makedirs(base)
            try:
                write_marker(base, rid, BASE_MARKER)
            except StorageError:
                pass                    # made by another process of the job at the same time
        self.reclaimed = reclaim(base)
        self.root = _make_root(base, rid)
        if repository is not None:   # `vlcc doctor REPO` judges only REPO's tiers
            tiermark.write(self.root, repository)
        self.layout = RepoPaths(self.root)
        self.spill_budget = int(spill_budget)
        self.spill_used = 0
        self._spill_lock = threading.Lock()
        self._spill_seq = itertools.count()

    # -- spill space --------------------------------------------------------------------
    def spill_buffer(self, nbytes: int) -> np.ndarray | None:
        """A flat uint8 buffer of ``nbytes`` backed by this tier's file system
        (tmpfs: RAM outside the memory budget), or None when the spill budget
        or the file system is full. The file is unlinked at once: the pages
        live as long as the buffer, and a killed process leaves nothing."""
        with self._spill_lock:
            if self.spill_used + nbytes > self.spill_budget:
                return None
            try:
                if shutil.disk_usage(self.root).free < 2 * nbytes:
                    return None
            except OSError:
                return None
            path = os.path.join(self.root, f"spill-{next(self._spill_seq)}")
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
                try:
                    os.unlink(path)
                    os.posix_fallocate(fd, 0, nbytes)    # ENOSPC now, not as SIGBUS later
                    mm = mmap.mmap(fd, nbytes)
                finally:
                    os.close(fd)
            except OSError:
                return None
            self.spill_used += nbytes
        return np.frombuffer(mm, np.uint8)

    def release_spill(self, nbytes: int) -> None:
        with self._spill_lock:
            self.spill_used = max(0, self.spill_used - int(nbytes))

    # -- files --------------------------------------------------------------------------
    def promote(self, persistent: RepoPaths, rels: list[str]) -> None:
        """Copy files/dirs (repository-relative) to the persistent tier, durably."""
        for rel in rels:
            src, dst = self.layout.abs(rel), persistent.abs(rel)
            if not os.path.exists(src):
                continue   # e.g. no data file: every chunk of this rank was a dedup reference
            makedirs(os.path.dirname(dst))
            tmp = dst + ".tmp-promote"
            if os.path.isdir(src):
                shutil.rmtree(tmp, ignore_errors=True)
                shutil.copytree(src, tmp)
                fsync_tree(tmp)
            else:
                shutil.copyfile(src, tmp)
                fsync_file(tmp)
            os.replace(tmp, dst)
            fsync_dir(os.path.dirname(dst))

    def evict(self, vid: str, rank: int) -> None:
        d = self.layout.data_dir(vid)
        for name in (f"r{rank}.bp", f"r{rank}.idx.json"):
            p = os.path.join(d, name)
            if os.path.isdir(p):
                shutil.rmtree(p, ignore_errors=True)
            elif os.path.exists(p):
                os.unlink(p)
        try:
            os.rmdir(d)
        except OSError:
            pass

    def destroy(self) -> None:
        """Remove this process's directory, and the base directory when vlcc
        created it and no other process of the job still uses it."""
        shutil.rmtree(self.root, ignore_errors=True)
        _remove_base_if_unused(self.base)
