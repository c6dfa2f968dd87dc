"""The node-local tier: a per-process directory (default under /dev/shm) with
the repository's relative layout, so a file can be copied between tiers under
the same relative name; and the spill space for captures the memory tier
cannot hold.

Hygiene (tmpfs is RAM): each process directory holds an owner lock
(``owner.json``, repo/locks.py's record: host, pid, boot id). At start, the
directories of dead owners are removed — in this job's base directory and in
its sibling ``vlcc-<uid>-*`` base directories (other, killed jobs) — and base
directories left empty are removed; at close the process directory goes and
the base directory too when no other process uses it."""

from __future__ import annotations

import itertools
import mmap
import os
import re
import shutil
import socket
import threading
import time

import numpy as np

from ..repo import locks, tiermark
from ..repo.fsutil import fsync_dir, fsync_file, fsync_tree, makedirs
from ..repo.paths import RepoPaths

OWNER = "owner.json"   # a repo/locks.py record; `vlcc doctor` reads it too
from .resilience.store import MARK as STORE_MARK   # node stores outlive processes


def _stale_dir(path: str) -> bool:
    if os.path.exists(os.path.join(path, STORE_MARK)):
        return False     # a node store (engine/resilience/store.py): outlives processes
    owner = os.path.join(path, OWNER)
    if os.path.exists(owner):
        return locks.is_stale(owner)
    # No owner file: a directory of an older vlcc (named <host>-<pid>), or one
    # whose owner was killed between mkdir and the lock (then it is old).
    host, _, pid = os.path.basename(path).rpartition("-")
    if pid.isdigit() and locks.dead_reason({"host": host, "pid": int(pid)}) is not None:
        return True
    try:
        return time.time() - os.stat(path).st_mtime > locks.EMPTY_GRACE and not pid.isdigit()
    except OSError:
        return False


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
        gone = _reclaim_base(d)
        removed += gone
        try:
            # only when empty (a live job's directory stays), and not a base
            # another job has just made and is about to fill
            if gone or time.time() - os.stat(d).st_mtime > locks.EMPTY_GRACE:
                os.rmdir(d)
                removed.append(d)
        except OSError:
            pass
    return removed


class LocalTier:
    def __init__(self, base: str, spill_budget: int = 0, repository: RepoPaths | None = None):
        self.base = base
        makedirs(base)
        self.reclaimed = reclaim(base)
        self.root = os.path.join(base, f"{socket.gethostname()}-{os.getpid()}")
        makedirs(self.root)
        locks.try_create(os.path.join(self.root, OWNER), "local")
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
        """Remove this process's directory, and the base directory when no
        other process of the job still uses it (no empty directory is left)."""
        shutil.rmtree(self.root, ignore_errors=True)
        try:
            os.rmdir(self.base)
        except OSError:
            pass
