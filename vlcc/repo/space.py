"""Disk space: check and reserve it before a write that cannot fail cleanly.

ADIOS2 reports a full disk while closing a data file by throwing from a C++
destructor, which aborts the process (issue 10). So a rank reserves the
space its BP5 file will take *before* ADIOS2 writes a byte (io/bp5.py):
``fallocate(FALLOC_FL_KEEP_SIZE)`` of the files ADIOS2 has opened gives
those very files their blocks (nobody else can take them; the file size
does not change, so ADIOS2 sees nothing), and ``trim`` gives back what was
not used once the file is closed. Where the file system cannot preallocate
(EOPNOTSUPP) a ``statvfs`` check is the fallback: it catches a disk that is
already full, not a race with another writer.

The Linux ``fallocate(2)`` is called through ctypes on purpose:
``os.posix_fallocate`` has no KEEP_SIZE flag and glibc emulates it by
writing a byte per block where the file system lacks the call (slow on a
parallel file system, and it grows the file)."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os

from ..errors import StorageError, storage_error
from ..units import human_bytes

FALLOC_FL_KEEP_SIZE = 0x01
_NO_FALLOCATE = {errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL, errno.ENOTTY}

_libc = None


def _fallocate_fn():
    global _libc
    if _libc is None:
        try:
            lib = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
            fn = lib.fallocate
            fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
            fn.restype = ctypes.c_int
            _libc = fn
        except (OSError, AttributeError):
            _libc = False
    return _libc or None


def _statvfs(path: str):
    d = path
    while d and not os.path.exists(d):
        d = os.path.dirname(d)
    try:
        return os.statvfs(d or ".")
    except OSError:
        return None


def free_bytes(path: str) -> int | None:
    """Bytes an unprivileged writer may still use on the file system of
    ``path`` (or of its nearest existing parent); None when unknown."""
    st = _statvfs(path)
    return None if st is None else st.f_bavail * st.f_frsize


def check_room(path: str, nbytes: int, what: str, label: str = "", inodes: int = 0) -> None:
    """Raise StorageError (naming ``what``, e.g. the version, and ``label``
    ``path``) unless the file system of ``path`` has ``nbytes`` and
    ``inodes`` free. Costs one statvfs."""
    head = f"{what + ': ' if what else ''}no space left on device for {label + ' ' if label else ''}{path}"
    free = free_bytes(path)
    if free is not None and free < nbytes:
        raise StorageError(f"{head} (needs {human_bytes(nbytes)}, {human_bytes(free)} free)")
    if inodes:
        st = _statvfs(path)
        if st is not None and st.f_files and st.f_favail < inodes:
            raise StorageError(f"{head} (needs {inodes} inodes, {st.f_favail} free)")


def preallocate(path: str, nbytes: int, what: str) -> bool:
    """Give file ``path`` (created if missing) ``nbytes`` of blocks without
    changing its size. Returns False when the file system cannot preallocate
    (the caller relies on ``check_room``); raises StorageError naming
    ``what`` and ``path`` when the space is not there."""
    if nbytes <= 0:
        return True
    fn = _fallocate_fn()
    if fn is None:
        return False
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    except OSError as exc:
        raise storage_error(exc, f"{what}: cannot create {path} to reserve space") from exc
    try:
        if fn(fd, FALLOC_FL_KEEP_SIZE, 0, int(nbytes)) != 0:
            err = ctypes.get_errno()
            if err in _NO_FALLOCATE:
                return False
            free = free_bytes(path)
            reason = "no space left on device" if err in (errno.ENOSPC, errno.EDQUOT) \
                else os.strerror(err)
            raise StorageError(f"{what}: {reason}: cannot reserve {human_bytes(int(nbytes))} for {path}"
                               + ("" if free is None else f" ({human_bytes(free)} free)"))
        return True
    finally:
        os.close(fd)


def trim(path: str) -> None:
    """Give back the blocks preallocated beyond the end of file ``path``
    (truncating to its own size drops KEEP_SIZE blocks past EOF)."""
    try:
        os.truncate(path, os.path.getsize(path))
    except OSError:
        pass
