"""Branches (movable) and tags (fixed): one small file per ref holding a
version id, replaced by atomic rename (docs/format.md, section 5)."""

from __future__ import annotations

import contextlib
import os
import socket
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
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None  # absent, or only a prefix of other refs' names ('exp' of 'exp/a')
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


def check_free(layout: Layout, kind: str, name: str) -> None:
    """Ref names are paths (as in git): ``exp`` and ``exp/a`` cannot both exist.
    Raise RefExistsError naming the clashing ref if ``name`` cannot be created."""
    parts = name.split("/")
    for i in range(1, len(parts)):
        prefix = "/".join(parts[:i])
        if os.path.isfile(layout.ref(kind, prefix)):
            raise RefExistsError(f"{kind} {name!r} clashes with existing {kind} {prefix!r} in "
                                 f"{layout.root}: a name cannot also be a prefix of another")
    if os.path.isdir(layout.ref(kind, name)):
        below = sorted(n for n in list_refs(layout, kind) if n.startswith(name + "/"))
        raise RefExistsError(f"{kind} {name!r} clashes with existing {kind} "
                             f"{(below or [name + '/...'])[0]!r} in {layout.root}: a name cannot "
                             f"also be a prefix of another")


def create_ref(layout: Layout, kind: str, name: str, vid: str) -> None:
    """Create a new ref; fails with RefExistsError if the name is taken (atomic)."""
    check_ref_name(name, kind)
    path = layout.ref(kind, name)
    if not os.path.isfile(path):
        check_free(layout, kind, name)
    _ensure_parent(path)
    try:
        atomic_write(path, (vid + "\n").encode(), exclusive=True)
    except FileExistsError:
        raise RefExistsError(f"{kind} {name!r} already exists in {layout.root} "
                             f"(at {read_ref(layout, kind, name)})") from None


def _holder_gone(path: str) -> bool:
    """True if lock file ``path`` names a process on this host that no longer exists."""
    try:
        with open(path) as f:
            pid_s, host = f.read().split()
        pid = int(pid_s)
    except (OSError, ValueError):
        return False  # unreadable, or just created and not written yet: judge by age only
    if host != socket.gethostname() or pid == os.getpid() or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # exists (owned by someone else)
    try:  # a killed process not yet reaped (zombie) is gone too (Linux /proc)
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except (OSError, IndexError):
        return False


@contextlib.contextmanager
def ref_lock(layout: Layout, kind: str, name: str, timeout: float = 120.0):
    """Exclusive lock of one ref for a read-modify-write, by O_EXCL creation of
    ``NAME.lock`` (atomic on local file systems, NFSv3+ and Lustre). The lock
    names its holder (pid and host): a lock whose holder on this host is gone,
    or any lock older than LOCK_STALE_SECONDS, is presumed left by a killed
    process and broken."""
    path = layout.ref(kind, name) + ".lock"
    _ensure_parent(path)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
            os.close(fd)
            break
        except FileExistsError:
            try:
                if (_holder_gone(path)
                        or time.time() - os.stat(path).st_mtime > LOCK_STALE_SECONDS):
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
