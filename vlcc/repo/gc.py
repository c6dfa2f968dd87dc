"""Garbage collection, pruning and space accounting (docs/format.md,
"Redundancy and encoding" → "Garbage collection").

* ``prune(repo, keep_last=N)`` removes version manifests: per branch the N
  newest versions of its lineage are kept, and every tagged version. Data is
  not touched (a pruned version's chunks may be referenced by kept ones).
* ``gc(repo)`` removes data files no live version references: a BP5 file is
  live while any live version's rank index names it in its ``files`` table.
  Files are the unit (no repacking): a file of a pruned version that still
  holds one referenced chunk stays whole.
* ``du(repo)`` reports logical bytes vs stored bytes per version and branch.

Safety against writers (promise 4): a checkpoint holds a *writer lock*
``locks/write-*.lock`` (rank 0 creates it before any rank reads the parent's
index and removes it after the manifest is written); gc and prune hold the
exclusive ``locks/gc.lock``. Both sides create their lock first and then look
for the other's, so at most one side proceeds: a writer that sees gc.lock
removes its lock and waits; gc that sees a live writer lock waits (up to
``timeout``, then gives up without deleting anything). Locks older than
``stale`` seconds are presumed left by a killed process. As a second line of
defence gc keeps, for ``grace`` seconds, every data directory without a
manifest (an in-flight or failed commit) and every file such a directory's
indexes reference."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import time

from ..errors import VlccError, storage_error
from .fsutil import fsync_dir, makedirs
from .layout import Layout, is_version_id
from .manifest import unseal

LOCK_DIR = "locks"
GC_LOCK = "gc.lock"
STALE_SECONDS = 3600.0
GRACE_SECONDS = 3600.0


class LockBusyError(VlccError):
    """gc/prune could not get the repository to itself (writers active or another gc)."""


def _lock_dir(layout: Layout) -> str:
    d = layout.p(LOCK_DIR)
    makedirs(d)
    return d


def _fresh(path: str, stale: float) -> bool:
    try:
        return time.time() - os.stat(path).st_mtime < stale
    except FileNotFoundError:
        return False


def _create(path: str) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    except OSError as exc:
        raise storage_error(exc, f"cannot create lock file {path}") from exc
    try:
        os.write(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                 "time": time.time()}).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(os.path.dirname(path))
    return True


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def acquire_writer_lock(layout: Layout, *, timeout: float = 600.0, stale: float = STALE_SECONDS) -> str:
    """Take a shared writer lock (many writers at once); waits while a gc runs.
    Returns the lock path for ``release_lock``."""
    d = _lock_dir(layout)
    gcl = os.path.join(d, GC_LOCK)
    deadline = time.monotonic() + timeout
    while True:
        path = os.path.join(d, f"write-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}.lock")
        _create(path)
        if not _fresh(gcl, stale):
            return path
        _unlink(path)                       # gc is running: back off
        if time.monotonic() > deadline:
            raise LockBusyError(f"repository {layout.root}: gc lock {gcl} held for more than "
                                f"{timeout:.0f} s; checkpoint not started")
        time.sleep(0.05)


def release_lock(path: str | None) -> None:
    if path:
        _unlink(path)


@contextlib.contextmanager
def exclusive(layout: Layout, *, timeout: float = 60.0, stale: float = STALE_SECONDS):
    """Hold ``locks/gc.lock`` with no live writer lock: gc/prune run alone."""
    d = _lock_dir(layout)
    gcl = os.path.join(d, GC_LOCK)
    if not _create(gcl):
        if _fresh(gcl, stale):
            raise LockBusyError(f"repository {layout.root}: another gc/prune holds {gcl}")
        _unlink(gcl)
        if not _create(gcl):
            raise LockBusyError(f"repository {layout.root}: another gc/prune holds {gcl}")
    try:
        deadline = time.monotonic() + timeout
        while True:
            writers = [f for f in os.listdir(d) if f.startswith("write-")
                       and _fresh(os.path.join(d, f), stale)]
            if not writers:
                break
            if time.monotonic() > deadline:
                raise LockBusyError(f"repository {layout.root}: {len(writers)} checkpoint(s) in "
                                    f"flight ({', '.join(sorted(writers)[:3])}); nothing deleted")
            time.sleep(0.05)
        yield
    finally:
        _unlink(gcl)


# -- reading the repository ---------------------------------------------------------

def _manifests(layout: Layout) -> dict[str, dict]:
    out = {}
    try:
        names = os.listdir(layout.versions_dir)
    except FileNotFoundError:
        return out
    for n in names:
        if n.endswith(".json") and is_version_id(n[:-5]):
            path = layout.manifest(n[:-5])
            with open(path, "rb") as f:
                out[n[:-5]] = unseal(f.read(), f"manifest {path}")
    return out


def _read_index(layout: Layout, rel: str) -> dict | None:
    try:
        with open(layout.abs(rel), "rb") as f:
            return json.loads(f.read())
    except (FileNotFoundError, ValueError):
        return None


def _index_rels(m: dict) -> list[str]:
    return [r["index"] for r in m["ranks"]]


def _tree_bytes(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(r, f)) for r, _d, fs in os.walk(path) for f in fs)


def _remove(path: str) -> int:
    n = _tree_bytes(path)
    if os.path.isdir(path):
        shutil.rmtree(path)
    else:
        _unlink(path)
    return n


# -- gc -----------------------------------------------------------------------------

def gc(path: str, *, dry_run: bool = False, grace: float = GRACE_SECONDS,
       timeout: float = 60.0, stale: float = STALE_SECONDS) -> dict:
    """Delete data no live version references. Returns counts and bytes."""
    layout = Layout(path)
    with exclusive(layout, timeout=timeout, stale=stale):
        manifests = _manifests(layout)
        live_files: set[str] = set()
        live_idx: set[str] = set()
        for m in manifests.values():
            for rel in _index_rels(m):
                live_idx.add(rel)
                idx = _read_index(layout, rel)
                if idx is None:
                    raise VlccError(f"version {m['id']}: index {rel} is unreadable; gc refuses to "
                                    f"guess what it references (run verify)")
                live_files.update(idx["files"])
        data = layout.p("data")
        now = time.time()
        young = set()
        for vid in os.listdir(data) if os.path.isdir(data) else []:
            if vid in manifests:
                continue
            vdir = os.path.join(data, vid)
            if now - os.stat(vdir).st_mtime < grace:
                young.add(vid)   # in flight or just failed: keep it and what it references
                for f in os.listdir(vdir):
                    if f.endswith(".idx.json"):
                        idx = _read_index(layout, f"data/{vid}/{f}")
                        if idx:
                            live_files.update(idx["files"])
        removed, reclaimed = [], 0
        for vid in sorted(os.listdir(data)) if os.path.isdir(data) else []:
            if vid in manifests or vid in young:
                continue
            vdir = os.path.join(data, vid)
            for f in sorted(os.listdir(vdir)):
                rel = f"data/{vid}/{f}"
                if rel in live_files:
                    continue
                reclaimed += _tree_bytes(os.path.join(vdir, f)) if dry_run else _remove(os.path.join(vdir, f))
                removed.append(rel)
            if not dry_run and not os.listdir(vdir):
                os.rmdir(vdir)
        if not dry_run and removed:
            fsync_dir(data)
        kept_pruned = sorted({r.split("/")[1] for r in live_files} - set(manifests))
        return {"removed": removed, "reclaimed_bytes": reclaimed, "live_versions": len(manifests),
                "kept_for_references": kept_pruned, "kept_in_flight": sorted(young),
                "dry_run": dry_run}


# -- prune --------------------------------------------------------------------------

def _branch_heads(layout: Layout) -> dict[str, str]:
    from . import refs
    return refs.list_refs(layout, "branch")


def prune(path: str, *, keep_last: int, branches: list[str] | None = None, dry_run: bool = False,
          timeout: float = 60.0, stale: float = STALE_SECONDS) -> dict:
    """Remove manifests of versions that are neither among the ``keep_last``
    newest of some branch's lineage nor tagged. With ``branches`` only the
    lineages of those branches are thinned (versions reachable from other
    branches' newest N stay). Run ``gc`` afterwards to reclaim the space."""
    if int(keep_last) < 1:
        raise VlccError(f"keep_last must be ≥ 1 (a branch keeps at least its head), got {keep_last}")
    from . import refs
    layout = Layout(path)
    from .repository import Repository
    repo = Repository(path)
    with exclusive(layout, timeout=timeout, stale=stale):
        manifests = _manifests(layout)
        keep: set[str] = set(refs.list_refs(layout, "tag").values())
        heads = {b: repo.branch_head(b) for b in _branch_heads(layout)}
        for b, head in heads.items():
            n = keep_last if branches is None or b in branches else len(manifests)
            vid, k = head, 0
            while vid is not None and vid in manifests and k < n:
                keep.add(vid)
                vid = manifests[vid].get("parent")
                k += 1
        drop = sorted(set(manifests) - keep)
        if not dry_run:
            for vid in drop:
                _unlink(layout.manifest(vid))
            if drop:
                fsync_dir(layout.versions_dir)
        return {"removed_versions": drop, "kept_versions": sorted(keep & set(manifests)),
                "dry_run": dry_run}


# -- du -----------------------------------------------------------------------------

def du(path: str) -> dict:
    """Logical bytes (what restores produce) vs stored bytes (what the version
    added to disk: its data directory) per version, per branch, in total."""
    layout = Layout(path)
    manifests = _manifests(layout)
    versions = []
    for vid, m in sorted(manifests.items(), key=lambda kv: (kv[1]["time"], kv[0])):
        logical = sum(b["nbytes"] for p in m["providers"].values() for b in p["blocks"])
        new = _tree_bytes(layout.data_dir(vid)) if os.path.isdir(layout.data_dir(vid)) else 0
        ref = own = 0
        for rel in _index_rels(m):
            idx = _read_index(layout, rel) or {"leaves": {}, "files": []}
            mine = {i for i, f in enumerate(idx["files"]) if f.startswith(f"data/{vid}/")}
            for e in idx["leaves"].values():
                for c in e["chunks"]:
                    if c[0] in mine:
                        own += c[3]
                    else:
                        ref += c[4]
        versions.append({"id": vid, "branch": m["branch"], "step": m.get("step"),
                         "logical_bytes": logical, "stored_bytes": new, "new_chunk_bytes": own,
                         "reused_bytes": ref})
    branches: dict[str, dict] = {}
    for v in versions:
        b = branches.setdefault(v["branch"], {"versions": 0, "logical_bytes": 0, "stored_bytes": 0})
        b["versions"] += 1
        b["logical_bytes"] += v["logical_bytes"]
        b["stored_bytes"] += v["stored_bytes"]
    data = layout.p("data")
    total_stored = _tree_bytes(data) if os.path.isdir(data) else 0
    total_logical = sum(v["logical_bytes"] for v in versions)
    return {"versions": versions, "branches": branches,
            "total": {"logical_bytes": total_logical, "stored_bytes": total_stored,
                      "dedup_ratio": (total_logical / total_stored) if total_stored else None}}
