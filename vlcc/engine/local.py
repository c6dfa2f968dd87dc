"""The node-local tier: a per-process directory (default under /dev/shm) with
the repository's relative layout, so a file can be copied between tiers under
the same relative name. Directories of dead processes are reclaimed at start."""

from __future__ import annotations

import os
import shutil
import socket

from ..repo.fsutil import fsync_dir, fsync_file, fsync_tree, makedirs
from ..repo.paths import RepoPaths


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reclaim(base: str) -> list[str]:
    """Remove local-tier directories left by processes of this host that died
    (SIGKILL, node-local crash). Returns what was removed."""
    host = socket.gethostname()
    removed = []
    try:
        names = os.listdir(base)
    except FileNotFoundError:
        return removed
    for name in names:
        h, _, pid = name.rpartition("-")
        if h == host and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)
            removed.append(name)
    return removed


class LocalTier:
    def __init__(self, base: str):
        self.base = base
        makedirs(base)
        self.reclaimed = reclaim(base)
        self.root = os.path.join(base, f"{socket.gethostname()}-{os.getpid()}")
        makedirs(self.root)
        self.layout = RepoPaths(self.root)

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
        shutil.rmtree(self.root, ignore_errors=True)
