"""Branches (movable) and tags (fixed): one small file per ref holding a
version id, replaced by atomic rename (docs/format.md, section 5)."""

from __future__ import annotations

import contextlib
import os
import time

from ..errors import NotFoundError, RefExistsError, StorageError, VlccError
from .fsutil import atomic_write
from .layout import Layout, check_ref_name

LOCK_STALE_SECONDS = 60.0


def read_ref(layout: Layout, kind: str, name: str) -> str | None:
    check_ref_name(name, kind)
    try:
        with open(layout.ref(kind, name)) as f:
            vid = f.read().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StorageError(f"cannot read {kind} {name!r} at {layout.ref(kind, name)}: {exc}") from exc
    return vid or None


def list_refs(layout: Layout, kind: str) -> dict[str, str]:
    root = layout.ref_dir(kind)
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            if f.startswith(".tmp-") or f.endswith(".lock"):
                continue
            name = os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, "/")
            vid = read_ref(layout, kind, name)
            if vid:
                out[name] = vid
    return out


def _ensure_parent(path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)


def create_ref(layout: Layout, kind: str, name: str, vid: str) -> None:
    """Create a new ref; fails with RefExistsError if the name is taken (atomic)."""
    check_ref_name(name, kind)
    path = layout.ref(kind, name)
    _ensure_parent(path)
    try:
        atomic_write(path, (vid + "\n").encode(), exclusive=True)
    except FileExistsError:
        raise RefExistsError(f"{kind} {name!r} already exists in {layout.root} "
                             f"(at {read_ref(layout, kind, name)})") from None


@contextlib.contextmanager
def ref_lock(layout: Layout, kind: str, name: str, timeout: float = 120.0):
    """Exclusive lock of one ref for a read-modify-write, by O_EXCL creation of
    ``NAME.lock`` (atomic on local file systems, NFSv3+ and Lustre). A lock older
    than LOCK_STALE_SECONDS is presumed left by a killed process and broken."""
    path = layout.ref(kind, name) + ".lock"
    _ensure_parent(path)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, f"{os.getpid()}\n".encode())
            os.close(fd)
            break
        except FileExistsError:
            try:
                if time.time() - os.stat(path).st_mtime > LOCK_STALE_SECONDS:
                    os.unlink(path)
                    continue
            except FileNotFoundError:
                continue
            if time.monotonic() > deadline:
                raise VlccError(f"timed out waiting for lock {path}") from None
            time.sleep(0.005)
    try:
        yield
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def set_branch(layout: Layout, name: str, vid: str, expect: str | None = None) -> None:
    """Move branch ``name`` to ``vid``. With ``expect`` the branch must still be
    at ``expect`` (or absent when ``expect`` is None); held under the ref lock."""
    with ref_lock(layout, "branch", name):
        atomic_write(layout.ref("branch", name), (vid + "\n").encode())


def require_ref(layout: Layout, kind: str, name: str) -> str:
    vid = read_ref(layout, kind, name)
    if vid is None:
        known = sorted(list_refs(layout, kind))
        raise NotFoundError(f"unknown {kind} {name!r} in repository {layout.root} "
                            f"(known: {', '.join(known) or 'none'})")
    return vid
