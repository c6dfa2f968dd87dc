"""Durable, atomic file operations: the only way vlcc writes metadata."""

from __future__ import annotations

import os
import secrets

from ..errors import storage_error


def fsync_dir(path: str) -> None:
    """Make a rename or file creation inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: str) -> None:
    """fsync every file below ``path`` and every directory, deepest first."""
    for root, _dirs, files in os.walk(path, topdown=False):
        for f in files:
            fsync_file(os.path.join(root, f))
        fsync_dir(root)


def atomic_write(path: str, data: bytes, *, exclusive: bool = False) -> None:
    """Write ``data`` to ``path`` so that readers see either nothing/the old
    content or the whole new content, durably (tmp file + fsync + rename).

    With ``exclusive`` the final name must not exist yet (link instead of
    rename, which fails atomically if the target exists)."""
    d = os.path.dirname(path) or "."
    tmp = os.path.join(d, f".tmp-{os.path.basename(path)}-{secrets.token_hex(6)}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        if exclusive:
            os.link(tmp, path)  # raises FileExistsError atomically
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
        fsync_dir(d)
    except FileExistsError:
        _silent_unlink(tmp)
        raise
    except OSError as exc:
        _silent_unlink(tmp)
        raise storage_error(exc, f"cannot write {path}") from exc


def _silent_unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def makedirs(path: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise storage_error(exc, f"cannot create directory {path}") from exc
