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
``timeout``, then gives up without deleting anything). A lock whose holder
is dead (repo/locks.py: pid/host/boot id) is broken at once; one of another
host counts as dead after ``stale`` seconds. Holding gc.lock with no live
writer, gc removes data directories without a manifest (their writer is
dead) and temp files at once; only when a lock was broken by age alone (its
holder on another host cannot be asked) does it keep, for ``grace`` seconds,
every data directory without a manifest and every file its indexes
reference."""

from __future__ import annotations

import os
import shutil
import time
import warnings

from ..errors import ArgumentError, CorruptionError, FormatVersionError, StorageError, VlccError
from .fsutil import fsync_dir
from . import locks
from .locks import STALE_SECONDS, gc_exclusive
from .nodelocal import NODELOCAL, complete_on, read_record
from .paths import RepoPaths, is_version_id
from . import refs
from .catalog import Catalog
from .index import load_index, rank_views
from .manifest import load_manifest, logical_bytes, rank_indexes

GRACE_SECONDS = 3600.0


# -- reading the repository ---------------------------------------------------------

def _manifests(layout: RepoPaths) -> dict[str, dict]:
    """Every manifest (a damaged one raises: gc must not guess what it references)."""
    out = {}
    try:
        names = os.listdir(layout.versions_dir)
    except FileNotFoundError:
        return out
    for n in names:
        if n.endswith(".json") and is_version_id(n[:-5]):
            out[n[:-5]] = load_manifest(layout.manifest(n[:-5]), n[:-5], layout.root)
    return out


def _read_index(layout: RepoPaths, rel: str, checksum: str | None = None) -> dict | None:
    """A rank index through the one loader; None if missing or damaged."""
    try:
        return load_index(layout.abs(rel), checksum, f"index {rel}")
    except (CorruptionError, StorageError, FormatVersionError):
        return None


def _index_rels(layout: RepoPaths, m: dict) -> list[tuple[str, str]]:
    # format 4: the ranks of a node share one index file (section 3.4)
    return list(dict.fromkeys((rel, cs) for _rank, rel, cs in rank_indexes(layout, m)))


def _is_real_dir(path: str) -> bool:
    """A directory, not a symbolic link to one: gc never follows a link out of
    the repository (a crafted ``data/<id>`` → ``/home`` must not be emptied)."""
    return os.path.isdir(path) and not os.path.islink(path)


def _tree_bytes(path: str) -> int:
    """Bytes below ``path``, symbolic links counted as links (lstat, never followed)."""
    try:
        if not _is_real_dir(path):
            return os.lstat(path).st_size
    except FileNotFoundError:
        return 0
    n = 0
    for r, _d, fs in os.walk(path):      # os.walk does not descend into linked directories
        for f in fs:
            try:
                n += os.lstat(os.path.join(r, f)).st_size
            except FileNotFoundError:
                pass
    return n


def _remove(path: str) -> int:
    """Remove ``path``: a link only as a link (its target stays), a directory
    with rmtree (which removes links inside it without following them)."""
    n = _tree_bytes(path)
    if _is_real_dir(path):
        shutil.rmtree(path)
    else:
        locks.release(path)
    return n


# -- gc -----------------------------------------------------------------------------

TEMP_AGE = 60.0   # a ref's temp file may belong to a tag/branch being created right now


def is_temp(name: str) -> bool:
    """A leftover of an interrupted atomic write (fsutil.atomic_write, a lock
    record, a space placeholder) or of a promotion from the local tier."""
    return name.startswith(".tmp-") or name.endswith((".tmp-promote", ".tmp-recover"))


def temp_files(layout: RepoPaths, *, min_age: float = TEMP_AGE) -> list[str]:
    """Temp files outside ``data/`` (manifests, refs, config, locks), older
    than ``min_age`` seconds: refs and tags are written without a writer lock."""
    out, now = [], time.time()
    for top in ("", "versions", "refs", "locks"):
        base = layout.p(top) if top else layout.root
        walk = os.walk(base) if top == "refs" else [(base, [], _listdir(base))]
        for root, _dirs, files in walk:
            for f in files:
                p = os.path.join(root, f)
                try:
                    if is_temp(f) and now - os.lstat(p).st_mtime > min_age:
                        out.append(p)
                except FileNotFoundError:
                    pass
    return sorted(out)


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return []


def node_local_only(layout: RepoPaths, vid: str, nranks: int) -> bool:
    """A version committed on node-local tiers only, not (yet) completed here."""
    return read_record(layout, vid, NODELOCAL) is not None and not complete_on(layout, vid, nranks)


def live_references(layout: RepoPaths, manifests: dict[str, dict]) -> set[str]:
    """Every data file (repository-relative) a live version's indexes name."""
    live: set[str] = set()
    for m in manifests.values():
        if node_local_only(layout, m["id"], int(m.get("nranks", 0))):
            continue   # its files are on the nodes; it references no other version's chunks
        for rel, cs in _index_rels(layout, m):
            idx = _read_index(layout, rel, cs)
            if idx is None:
                raise VlccError(f"version {m['id']}: index {rel} is unreadable; gc refuses to "
                                f"guess what it references (run verify)")
            for ri in rank_views(idx, rel):
                live.update(ri["files"])
    return live


def gc(path: str, *, dry_run: bool = False, grace: float = GRACE_SECONDS,
       timeout: float = 60.0, stale: float = STALE_SECONDS) -> dict:
    """Delete data no live version references, and leftovers of crashes.
    Returns counts and bytes.

    Under ``locks/gc.lock`` no writer is live (locks.gc_exclusive waits for
    live writers and breaks the locks of dead ones), so a data directory
    without a manifest belongs to a dead writer and goes at once, as do temp
    files. Only when a writer lock was broken by age alone (a holder on
    another host, which cannot be asked) are such directories younger than
    ``grace`` seconds kept, with every file their indexes reference."""
    layout = RepoPaths(path)
    with gc_exclusive(layout, timeout=timeout, stale=stale) as broken:
        manifests = _manifests(layout)
        live_files = live_references(layout, manifests)
        unsure = any(locks.guessed(r) and os.path.basename(p).startswith("write-")
                     for p, r in broken)
        data = layout.p("data")
        entries = sorted(_listdir(data))
        now = time.time()
        young = set()
        for vid in entries:
            vdir = os.path.join(data, vid)
            if vid in manifests or not _is_real_dir(vdir) or not unsure:
                continue
            if now - os.lstat(vdir).st_mtime < grace:
                young.add(vid)   # maybe a live writer elsewhere: keep it and what it references
                for f in _listdir(vdir):
                    if f.endswith(".idx.json"):
                        idx = _read_index(layout, f"data/{vid}/{f}")
                        if idx:
                            for ri in rank_views(idx, f):
                                live_files.update(ri["files"])
        # A kept BP5 file keeps the index of its version and rank: format 2
        # records the file's metadata checksums there (checked before reads).
        live_files |= {rel[:-3] + ".idx.json" for rel in live_files if rel.endswith(".bp")}
        removed, reclaimed = [], 0

        def drop(p: str, rel: str) -> None:
            nonlocal reclaimed
            reclaimed += _tree_bytes(p) if dry_run else _remove(p)
            removed.append(rel)

        for vid in entries:
            vdir = os.path.join(data, vid)
            if os.path.islink(vdir):
                if vid not in manifests:        # the link goes, never what it points at
                    drop(vdir, f"data/{vid}")
                else:
                    warnings.warn(f"gc: data/{vid} of version {vid} is a symbolic link "
                                  f"(to {os.readlink(vdir)}): not looked into", stacklevel=2)
                continue
            if not os.path.isdir(vdir):
                if is_temp(vid):
                    drop(vdir, f"data/{vid}")
                continue
            if vid in young:
                continue
            for f in sorted(_listdir(vdir)):
                rel = f"data/{vid}/{f}"
                if is_temp(f) or (vid not in manifests and rel not in live_files):
                    drop(os.path.join(vdir, f), rel)
            if not dry_run and vid not in manifests and not os.listdir(vdir):
                os.rmdir(vdir)
        temps = temp_files(layout)
        for p in temps:
            drop(p, os.path.relpath(p, layout.root).replace(os.sep, "/"))
        if not dry_run and removed:
            fsync_dir(data)
        kept_pruned = sorted({r.split("/")[1] for r in live_files} - set(manifests))
        return {"removed": removed, "reclaimed_bytes": reclaimed, "live_versions": len(manifests),
                "kept_for_references": kept_pruned, "kept_in_flight": sorted(young),
                "broken_locks": [{"lock": os.path.relpath(p, layout.root), "reason": r}
                                 for p, r in broken],
                "dry_run": dry_run}


# -- prune --------------------------------------------------------------------------

def _branch_heads(layout: RepoPaths) -> dict[str, str]:
    return refs.list_refs(layout, "branch")


def prune(path: str, *, keep_last: int, branches: list[str] | None = None, dry_run: bool = False,
          timeout: float = 60.0, stale: float = STALE_SECONDS) -> dict:
    """Remove manifests of versions that are neither among the ``keep_last``
    newest of some branch's lineage nor tagged. With ``branches`` only the
    lineages of those branches are thinned (versions reachable from other
    branches' newest N stay). Run ``gc`` afterwards to reclaim the space."""
    if int(keep_last) < 1:
        raise ArgumentError(f"keep_last must be ≥ 1 (a branch keeps at least its head), got {keep_last}")
    layout = RepoPaths(path)
    repo = Catalog(path)
    with gc_exclusive(layout, timeout=timeout, stale=stale):
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
                locks.release(layout.manifest(vid))
            if drop:
                fsync_dir(layout.versions_dir)
        return {"removed_versions": drop, "kept_versions": sorted(keep & set(manifests)),
                "dry_run": dry_run}


# -- du -----------------------------------------------------------------------------

def du(path: str) -> dict:
    """Logical bytes (what restores produce) vs stored bytes (what the version
    added to disk: its data directory) per version, per branch, in total."""
    layout = RepoPaths(path)
    manifests = _manifests(layout)
    versions = []
    for vid, m in sorted(manifests.items(), key=lambda kv: (kv[1]["time"], kv[0])):
        logical = logical_bytes(m)
        new = _tree_bytes(layout.data_dir(vid)) if os.path.isdir(layout.data_dir(vid)) else 0
        ref = own = 0
        for rel, cs in _index_rels(layout, m):
            idx = _read_index(layout, rel, cs) or {"leaves": {}, "files": []}
            for ri in rank_views(idx, rel):
                mine = {i for i, f in enumerate(ri["files"]) if f.startswith(f"data/{vid}/")}
                for e in ri["leaves"].values():
                    for c in e.chunks:
                        if c.file in mine:
                            own += c.stored
                        else:
                            ref += c.nbytes
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
