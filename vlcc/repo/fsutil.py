"""Durable, atomic file operations: the only way vlcc writes metadata."""

from __future__ import annotations

import os
import secrets
import stat

from ..errors import CorruptionError, StorageError, storage_error

# Larger than any manifest, index or ref vlcc writes (a manifest of 10^5
# providers is ~30 MB): a bigger file is damaged or crafted, never read whole.
MAX_METADATA_BYTES = 1 << 30
_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFDIR: "a directory", stat.S_IFSOCK: "a socket", stat.S_IFLNK: "a symbolic link"}


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


def read_regular(path: str, what: str, limit: int = MAX_METADATA_BYTES) -> bytes:
    """The bytes of a metadata file vlcc wrote: a regular file, not a symbolic
    link, FIFO, device or directory, at most ``limit`` bytes; anything else is
    a CorruptionError naming ``what`` and the file, raised without blocking
    or reading it (a repository may come from a stranger). A missing file
    raises FileNotFoundError; other OSErrors become StorageError."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        kind = _kind(path)
        if kind:
            raise CorruptionError(f"{what}: {path} is {kind}, not a file vlcc wrote") from None
        raise StorageError(f"{what}: cannot read {path} ({exc.strerror or exc})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise CorruptionError(f"{what}: {path} is {_KINDS.get(stat.S_IFMT(st.st_mode), 'not a regular file')}, "
                                  f"not a file vlcc wrote")
        if st.st_size > limit:
            raise CorruptionError(f"{what}: {path} has {st.st_size} bytes, more than the {limit} "
                                  f"a vlcc metadata file can have")
        chunks, left = [], st.st_size
        while left > 0:
            b = os.read(fd, left)
            if not b:
                break
            chunks.append(b)
            left -= len(b)
        return b"".join(chunks)
    except OSError as exc:
        raise StorageError(f"{what}: cannot read {path} ({exc.strerror or exc})") from None
    finally:
        os.close(fd)


def _kind(path: str) -> str:
    try:
        return _KINDS.get(stat.S_IFMT(os.lstat(path).st_mode), "")
    except OSError:
        return ""


def inside(root: str, path: str) -> bool:
    """Whether ``path`` resolves (symbolic links followed) to a place inside ``root``."""
    r = os.path.realpath(root)
    return os.path.realpath(path).startswith(r.rstrip(os.sep) + os.sep)


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
