"""``vlcc doctor``: find (and with ``repair`` remove) what crashed jobs leave
behind, so an operator never deletes files by hand (docs/format.md, section 11):

* stale locks — writer, gc and branch-ref locks whose holder is known dead
  (repo/locks.py: same host and dead pid / other boot id, empty, or another
  host's lock older than the stale age);
* orphan data directories — ``data/<id>/`` without a manifest that no live
  version references, when no writer is live (so their writer is dead);
* temp files — ``.tmp-*`` of interrupted atomic writes, space placeholders
  and ``*.tmp-promote`` copies from the local tier;
* node-local tiers of dead jobs of THIS repository — ``<base>/<host>-<pid>``
  directories under ``$VLCC_LOCAL_DIR``, or under the default bases
  ``/dev/shm/vlcc-<uid>-*`` and ``$TMPDIR/vlcc-<uid>-*`` (engine/config.py),
  whose process is dead and whose marker (repo/tiermark.py) names this
  repository's id; other repositories' tiers are left to their own doctor;
* versions whose node-local data were rebuilt after a node loss, or that are
  held on node-local tiers only (``data/<V>/rebuilt.json``, ``nodelocal.json``,
  repo/nodelocal.py) — information, not problems;
* dangling or malformed refs — reported only: which version a branch should
  point at is the operator's decision (``vlcc log``).

Removing needs ``locks/gc.lock`` with no live writer (as gc); when writers
are in flight the repository items are reported, not touched. Doctor reads
no chunk data: damaged bytes are ``vlcc verify``'s to find."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass, asdict

from .. import settings
from ..errors import LockBusyError
from . import locks, nodelocal, tiermark
from .gc import GRACE_SECONDS, TEMP_AGE, _manifests, _tree_bytes, is_temp, live_references, temp_files
from .locks import STALE_SECONDS
from .paths import RepoPaths

EMPTY_BASE_AGE = 60.0    # a job creates its base, then its own directory inside
OWNER_FILES = ("owner.json",)   # engine/local.py writes it: a repo/locks.py record


INFO = ("busy", "node-local")   # findings that are information, not problems


@dataclass
class Finding:
    kind: str            # stale-lock | orphan-data | temp-file | local-tier | dangling-ref | busy
                         # | node-local (a version rebuilt from / held on node-local tiers)
    path: str            # what it is about (repository-relative inside the repository)
    detail: str          # why it is a problem
    fixable: bool = True  # doctor --repair may remove it
    nbytes: int = 0
    removed: bool = False
    error: str | None = None


class DoctorReport(dict):
    """What ``doctor`` found and did: a dict (``repo``, ``repair``,
    ``findings`` as dicts, ``remaining``: how many problems are left, ``ok``)
    whose ``findings`` / ``problems`` attributes are Finding objects. A
    ``busy`` finding (checkpoints in flight) is information, not a problem."""

    def __init__(self, repo: str, repair: bool, findings: list[Finding]):
        self._findings = findings
        left = self.problems
        super().__init__(repo=repo, repair=repair, findings=[asdict(f) for f in findings],
                         remaining=len(left), ok=not left)

    @property
    def repair(self) -> bool:
        return self["repair"]

    @property
    def findings(self) -> list[Finding]:
        return self._findings

    @property
    def problems(self) -> list[Finding]:
        """Problems not (or not yet) removed."""
        return [f for f in self._findings if not f.removed and f.kind not in INFO]

    @property
    def ok(self) -> bool:
        return not self.problems


# -- node-local tiers -----------------------------------------------------------------

def local_bases() -> list[tuple[str, bool]]:
    """(base, explicit): $VLCC_LOCAL_DIR if set, else the default bases of this user."""
    env = settings.get("VLCC_LOCAL_DIR")
    if env and env.lower() not in ("none", "off"):
        return [(os.path.abspath(env), True)]
    out = []
    for top in ("/dev/shm", tempfile.gettempdir()):
        out += [(p, False) for p in sorted(glob.glob(os.path.join(top, f"vlcc-{os.getuid()}-*")))
                if os.path.isdir(p) and not os.path.islink(p)]
    return out


def _owner(d: str, name: str) -> dict | None:
    """Who made a local-tier directory: its marker (engine/local.py's
    write_marker: pid/host/boot id, repository id); None for a directory
    without one, which is not vlcc's (a shared scratch folder's)."""
    for f in OWNER_FILES:
        doc = locks.read(os.path.join(d, f))    # a lock record (JSON file or, on a full disk, a link)
        if doc is not None and "pid" in doc and doc.get("kind") == "local":
            return doc
    return None


def dead_local_tiers(layout: RepoPaths | None = None) -> list[Finding]:
    """Local-tier directories of dead jobs on this host. With ``layout``, only
    those whose marker (repo/tiermark.py) names that repository: tiers of other
    repositories, and unmarked ones, are not this repository's to judge."""
    found = []
    host = socket.gethostname()
    rid = tiermark.repository_id(layout) if layout is not None else None
    for base, explicit in local_bases():
        try:
            names = os.listdir(base)
        except OSError:
            continue
        left = len(names)
        for name in names:
            d = os.path.join(base, name)
            if not os.path.isdir(d) or os.path.islink(d):
                continue
            if layout is not None and not tiermark.belongs(d, layout, rid):
                continue
            doc = _owner(d, name)
            reason = locks.dead_reason(doc) if doc and doc.get("host") == host else None
            if reason:
                found.append(Finding("local-tier", d, f"node-local tier of a dead job ({reason})",
                                     nbytes=_tree_bytes(d)))
                left -= 1
        # a base directory is shared by jobs of any repository: only when every
        # entry was one of this repository's dead tiers is the base this one's too
        if not explicit and left == 0 and (names or layout is None):
            try:
                if time.time() - os.stat(base).st_mtime > EMPTY_BASE_AGE or names:
                    found.append(Finding("local-tier", base, "node-local tier base left by "
                                         "finished jobs (nothing live inside)"))
            except OSError:
                pass
    return found


# -- the repository ---------------------------------------------------------------------

def _rel(layout: RepoPaths, p: str) -> str:
    return os.path.relpath(p, layout.root).replace(os.sep, "/")


def _lock_paths(layout: RepoPaths) -> list[str]:
    out = locks.list_locks(layout.locks_dir)
    for root, _d, files in os.walk(layout.ref_dir("branch")):
        out += [os.path.join(root, f) for f in files if f.endswith(".lock")]
    return out


def _scan_repo(layout: RepoPaths, stale: float, grace: float,
               broken: list | None = None) -> tuple[list[Finding], list[str]]:
    """Findings inside the repository, and the writer locks still live.
    ``broken``: locks gc_exclusive already removed (repair mode)."""
    found: list[Finding] = []
    unsure = False
    for p, reason in broken or []:
        found.append(Finding("stale-lock", _rel(layout, p), f"holder dead ({reason})", removed=True))
        unsure |= locks.guessed(reason)
    live_writers = []
    for p in _lock_paths(layout):
        if os.path.basename(p) == locks.GC_LOCK and broken is not None:
            continue    # our own
        reason = locks.stale_reason(p, stale)
        if reason:
            found.append(Finding("stale-lock", _rel(layout, p), f"holder dead ({reason})"))
            unsure |= locks.guessed(reason) and os.path.basename(p).startswith("write-")
        elif os.path.basename(p).startswith("write-"):
            live_writers.append(p)
    if live_writers:
        found.append(Finding("busy", _rel(layout, live_writers[0]),
                             f"{len(live_writers)} checkpoint(s) in flight: data directories "
                             f"without a manifest may be theirs; not checked", fixable=False))
    manifests = _manifests(layout)
    for vid, m in sorted(manifests.items()):
        note = nodelocal.describe(layout, vid, int(m.get("nranks", 0)))
        if note is not None:      # information: rebuilt, or held on node-local tiers
            found.append(Finding("node-local", f"data/{vid}", note, fixable=False))
    live = live_references(layout, manifests)
    live_dirs = {r.split("/")[1] for r in live}
    data = layout.p("data")
    now = time.time()
    for vid in sorted(os.listdir(data)) if os.path.isdir(data) else []:
        vdir = os.path.join(data, vid)
        if not os.path.isdir(vdir):
            if is_temp(vid) and not live_writers:
                found.append(Finding("temp-file", f"data/{vid}", "leftover of an interrupted write",
                                     nbytes=_tree_bytes(vdir)))
            continue
        if vid in manifests or vid in live_dirs:
            # committed (or still referenced) data is never written again: a
            # temp file inside is a leftover even while other writers run
            for f in sorted(os.listdir(vdir)):
                if is_temp(f):
                    found.append(Finding("temp-file", f"data/{vid}/{f}",
                                         "leftover of an interrupted write",
                                         nbytes=_tree_bytes(os.path.join(vdir, f))))
            continue
        if live_writers:
            continue
        if unsure and now - os.stat(vdir).st_mtime < grace:
            found.append(Finding("orphan-data", f"data/{vid}", "no manifest; its writer may live on "
                                 "another host (lock broken by age): kept for the grace period",
                                 fixable=False, nbytes=_tree_bytes(vdir)))
            continue
        found.append(Finding("orphan-data", f"data/{vid}", "no manifest, no version references "
                             "it, no live writer (a crashed or failed checkpoint)",
                             nbytes=_tree_bytes(vdir)))
    for p in temp_files(layout, min_age=TEMP_AGE):
        found.append(Finding("temp-file", _rel(layout, p), "leftover of an interrupted write",
                             nbytes=_tree_bytes(p)))
    return found, live_writers


def _dangling(bad_refs: dict[str, str]) -> list[Finding]:
    return [Finding("dangling-ref", key, problem + "; fix: point it at a version (vlcc log) or "
                    "delete the ref file", fixable=False)
            for key, problem in sorted(bad_refs.items())]


def _remove(layout: RepoPaths, f: Finding) -> None:
    p = f.path if os.path.isabs(f.path) else layout.abs(f.path)
    try:
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p)
        else:
            os.unlink(p)
        f.removed = True
    except FileNotFoundError:
        f.removed = True
    except OSError as exc:
        f.error = exc.strerror or str(exc)


def doctor(layout: RepoPaths, *, repair: bool = False, bad_refs: dict[str, str] | None = None,
           stale: float = STALE_SECONDS, grace: float = GRACE_SECONDS,
           timeout: float = 10.0) -> DoctorReport:
    """Find leftovers of crashed jobs in the repository at ``layout`` and on
    this node; with ``repair`` remove the fixable ones (see module doc).
    ``bad_refs``: malformed/dangling refs as restore/verify.check_refs finds
    them ({"branch NAME": problem}), reported only."""
    found: list[Finding] = []
    if repair:
        try:
            with locks.gc_exclusive(layout, timeout=timeout, stale=stale) as broken:
                items, _ = _scan_repo(layout, stale, grace, broken)
                for f in items:
                    if f.fixable and not f.removed:
                        _remove(layout, f)
                found += items
        except LockBusyError as exc:
            items, _ = _scan_repo(layout, stale, grace)
            found += [f for f in items if f.kind != "orphan-data"]
            found.append(Finding("busy", "locks", f"not repaired: {exc}", fixable=False))
    else:
        found += _scan_repo(layout, stale, grace)[0]
    tiers = dead_local_tiers(layout)
    if repair:
        for f in tiers:
            _remove(layout, f)
    found += tiers
    found += _dangling(bad_refs or {})
    return DoctorReport(layout.root, repair, found)


__all__ = ["doctor", "DoctorReport", "Finding", "dead_local_tiers", "local_bases"]
