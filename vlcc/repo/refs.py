"""Branches (movable) and tags (fixed): one small file per ref holding a
version id, replaced by atomic rename (docs/format.md, section 5)."""

from __future__ import annotations

import os
import warnings

from ..errors import BranchMovedError, CorruptionError, NotFoundError, RefExistsError, VlccError
from . import locks
from .fsutil import atomic_write, makedirs, read_regular
from .paths import RepoPaths, check_ref_name

REF_LOCK_TIMEOUT = 120.0


def read_ref(paths: RepoPaths, kind: str, name: str) -> str | None:
    check_ref_name(name, kind)
    path = paths.ref(kind, name)
    if os.path.isdir(path) and not os.path.islink(path):
        return None  # only a prefix of other refs' names ('exp' of 'exp/a')
    if not os.path.isdir(os.path.dirname(path)):
        return None  # a prefix is missing, or is itself a ref ('main/sub' beside 'main')
    try:
        raw = read_regular(path, f"{kind} {name!r}", limit=4096)
    except (FileNotFoundError, NotADirectoryError):
        return None  # absent
    try:
        vid = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise CorruptionError(f"{kind} {name!r} ({path}) holds bytes that are not a version id "
                              f"(not ASCII): repair it with `vlcc branch`/`vlcc tag`, or remove it") from None
    return vid or None


def list_refs(paths: RepoPaths, kind: str) -> dict[str, str]:
    root = paths.ref_dir(kind)
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            if f.startswith(".tmp-") or f.endswith(".lock"):
                continue
            name = os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, "/")
            try:
                vid = read_ref(paths, kind, name)
            except VlccError as exc:   # one bad ref must not hide the others
                warnings.warn(f"skipping {kind} {name!r}: {exc}", stacklevel=2)
                continue
            if vid:
                out[name] = vid
    return out


def _ensure_parent(path: str) -> None:
    makedirs(os.path.dirname(path))   # StorageError naming the directory (full disk)


def check_free(paths: RepoPaths, kind: str, name: str) -> None:
    """Ref names are paths (as in git): ``exp`` and ``exp/a`` cannot both exist.
    Raise RefExistsError naming the clashing ref if ``name`` cannot be created."""
    parts = name.split("/")
    for i in range(1, len(parts)):
        prefix = "/".join(parts[:i])
        if os.path.isfile(paths.ref(kind, prefix)):
            raise RefExistsError(f"{kind} {name!r} clashes with existing {kind} {prefix!r} in "
                                 f"{paths.root}: a name cannot also be a prefix of another")
    if os.path.isdir(paths.ref(kind, name)):
        below = sorted(n for n in list_refs(paths, kind) if n.startswith(name + "/"))
        raise RefExistsError(f"{kind} {name!r} clashes with existing {kind} "
                             f"{(below or [name + '/...'])[0]!r} in {paths.root}: a name cannot "
                             f"also be a prefix of another")


def create_ref(paths: RepoPaths, kind: str, name: str, vid: str) -> None:
    """Create a new ref; fails with RefExistsError if the name is taken (atomic)."""
    check_ref_name(name, kind)
    path = paths.ref(kind, name)
    if not os.path.isfile(path):
        check_free(paths, kind, name)
    _ensure_parent(path)
    try:
        atomic_write(path, (vid + "\n").encode(), exclusive=True)
    except FileExistsError:
        raise RefExistsError(f"{kind} {name!r} already exists in {paths.root} "
                             f"(at {read_ref(paths, kind, name)})") from None


_ANY = object()   # set_branch without a compare-and-swap


def ref_lock(paths: RepoPaths, kind: str, name: str, timeout: float = REF_LOCK_TIMEOUT):
    """Exclusive lock of one ref for a read-modify-write: ``NAME.lock`` next to
    the ref, in the one lock format of repo/locks.py (a dead holder's lock is
    broken at once, see ``locks.is_stale``). A context manager."""
    path = paths.ref(kind, name) + ".lock"
    return locks.held(path, "ref", timeout=timeout, what=f"{kind} {name!r} of {paths.root}")


def set_branch(paths: RepoPaths, name: str, vid: str, expect=_ANY) -> None:
    """Move branch ``name`` to ``vid``. With ``expect`` (a version id, or None
    for "the branch has no ref yet") this is a compare-and-swap under the ref
    lock: if the ref names another version, BranchMovedError is raised and
    nothing changes."""
    with ref_lock(paths, "branch", name):
        if expect is not _ANY:
            cur = read_ref(paths, "branch", name)
            if cur != expect:
                raise BranchMovedError(f"branch {name!r} of {paths.root} moved: it is at {cur}, "
                                       f"expected {expect}")
        write_branch(paths, name, vid)


def write_branch(paths: RepoPaths, name: str, vid: str) -> None:
    """Replace the ref file (atomic rename); the caller holds ``ref_lock``."""
    atomic_write(paths.ref("branch", name), (vid + "\n").encode())


def require_ref(paths: RepoPaths, kind: str, name: str) -> str:
    vid = read_ref(paths, kind, name)
    if vid is None:
        known = sorted(list_refs(paths, kind))
        raise NotFoundError(f"unknown {kind} {name!r} in repository {paths.root} "
                            f"(known: {', '.join(known) or 'none'})")
    return vid
