"""Lock files: one implementation, one file format (docs/format.md, "Locks").

A lock is a file created with ``O_CREAT|O_EXCL`` (atomic on local file
systems, NFSv3+, Lustre, GPFS) holding one JSON object::

    {"kind": "write", "host": "node01", "pid": 4242, "boot_id": "…", "time": 1795601765.2}

``kind`` is ``write`` (a checkpoint in flight: shared, one file per writer,
``locks/write-<host>-<pid>-<rand>.lock``), ``gc`` (``locks/gc.lock``:
exclusive, gc/prune) or ``ref`` (``refs/branches/<name>.lock``: a branch
move). A lock is **stale** when its holder is known dead: same host and
(another boot, or no such pid, or a zombie); or when it is older than
``stale`` seconds (a holder on another host that cannot be asked); or when
it is empty/unreadable and older than ``EMPTY_GRACE`` seconds (a writer
killed between create and write). A stale lock may be removed by anyone.

On a full disk the JSON record cannot be written (a file's first byte needs
a block); the record then goes into a *symbolic link* of the same name whose
target is ``vlcc-lock KIND PID BOOT8 HOST`` (short targets live in the
inode on tmpfs, ext4, XFS: no data block), so gc and prune can still lock
the repository and free space."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time

from ..errors import LockBusyError, storage_error
from .fsutil import makedirs

STALE_SECONDS = 3600.0     # a lock of another host counts as dead after this
EMPTY_GRACE = 10.0         # an empty lock file (holder killed mid-create) after this


def boot_id() -> str:
    """This machine's boot id (Linux), so a lock left before a reboot is stale."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


_BOOT = boot_id()
_HOST = socket.gethostname()


def start_ticks(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, /proc/PID/stat
    field 22), or None where /proc is not readable: tells a live holder from
    a new process that reuses a dead holder's pid."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as f:
            stat = f.read()
        return int(stat[stat.rindex(b")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


_START = start_ticks(os.getpid())
_PID_AT_START = os.getpid()    # a fork has another pid and start time


def record(kind: str) -> dict:
    pid = os.getpid()
    return {"kind": kind, "host": _HOST, "pid": pid, "boot_id": _BOOT, "time": time.time(),
            "start": _START if pid == _PID_AT_START else start_ticks(pid)}


def _link_record(kind: str) -> str:
    return f"{LINK_MAGIC} {kind} {os.getpid()} {_BOOT[:8] or '-'} {_HOST}"


LINK_MAGIC = "vlcc-lock"


def try_create(path: str, kind: str) -> bool:
    """Create lock file ``path``; False if it exists. Never leaves an empty
    file behind: if writing the record fails (ENOSPC) the record goes into a
    symbolic link that replaces the empty file (atomic rename of our own
    lock), and if that fails too the file is removed."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    except OSError as exc:
        raise storage_error(exc, f"cannot create lock file {path}") from exc
    # No fsync: a lock only has to be visible to other processes (it is, once
    # created); after a power loss every holder is dead anyway. Two fsyncs per
    # lock were a measurable part of a small commit.
    try:
        try:
            os.write(fd, json.dumps(record(kind)).encode())
        finally:
            os.close(fd)
    except OSError as exc:
        try:
            _record_as_link(path, kind)
        except OSError:
            release(path)
            raise storage_error(exc, f"cannot write lock file {path}") from exc
    return True


def _record_as_link(path: str, kind: str) -> None:
    import secrets
    tmp = os.path.join(os.path.dirname(path), f".tmp-{os.path.basename(path)}-{secrets.token_hex(4)}")
    os.symlink(_link_record(kind), tmp)
    try:
        os.replace(tmp, path)
    except OSError:
        os.unlink(tmp)
        raise


def read(path: str) -> dict | None:
    """The lock's record, or None if missing, empty or unreadable."""
    try:
        if os.path.islink(path):     # written on a full disk (module doc)
            parts = os.readlink(path).split(" ", 4)
            if len(parts) != 5 or parts[0] != LINK_MAGIC or not parts[2].isdigit():
                return None
            return {"kind": parts[1], "pid": int(parts[2]),
                    "boot_id": "" if parts[3] == "-" else parts[3], "host": parts[4],
                    "time": os.lstat(path).st_mtime}
        with open(path, "rb") as f:
            doc = json.loads(f.read() or b"null")
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _pid_gone(pid: int) -> bool:
    if pid <= 0:
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False          # exists, owned by someone else
    try:                      # a killed process not yet reaped (zombie) is gone too
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _from_name(path: str) -> dict | None:
    """A writer lock's name says its host and pid (``write-HOST-PID-RAND.lock``):
    enough to judge an empty one left by a holder killed mid-create."""
    name = os.path.basename(path)
    if not (name.startswith("write-") and name.endswith(".lock")):
        return None
    host, _, rest = name[len("write-"):-len(".lock")].rpartition("-")
    host, _, pid = host.rpartition("-")
    return {"host": host, "pid": int(pid)} if pid.isdigit() else None


def dead_reason(doc: dict) -> str | None:
    """Why the process a record ``{"host", "pid", "boot_id"}`` names is known
    dead (``"rebooted"``, ``"dead pid N"``), or None: alive, or on another host."""
    if doc.get("host") != _HOST:
        return None
    b = doc.get("boot_id")
    if b and _BOOT and not _BOOT.startswith(b):   # a link record keeps 8 chars
        return "rebooted"
    try:
        pid = int(doc.get("pid", 0))
    except (TypeError, ValueError):
        return None
    if _pid_gone(pid):
        return f"dead pid {pid}"
    start = doc.get("start")
    if isinstance(start, int) and pid != os.getpid():
        now = start_ticks(pid)
        if now is not None and now != start:
            return f"dead pid {pid} (the pid now belongs to another process)"
    return None


def stale_reason(path: str, stale: float = STALE_SECONDS) -> str | None:
    """Why the holder of lock ``path`` is known dead, or None while it may
    live (see module doc): ``"rebooted"``, ``"dead pid N"``, ``"empty"``
    (holder killed mid-create) or ``"older than S s"`` (another host, which
    cannot be asked: only this reason is a guess)."""
    try:
        age = time.time() - os.lstat(path).st_mtime
    except FileNotFoundError:
        return None
    doc = read(path)
    if doc is None:
        named = _from_name(path)
        if named and named["host"] == _HOST and _pid_gone(named["pid"]):
            return f"dead pid {named['pid']}"
        return "empty" if age > EMPTY_GRACE else None
    dead = dead_reason(doc)
    if dead:
        return dead
    if doc.get("host") == _HOST:
        # Alive on this host (same boot, pid running): a long checkpoint or an
        # async version pending for hours still holds its lock. Only holders on
        # other hosts, which cannot be asked, are judged by age.
        return None
    return f"older than {stale:.0f} s (host {doc.get('host', '?')})" if age > stale else None


def is_stale(path: str, stale: float = STALE_SECONDS) -> bool:
    """True when the holder of lock ``path`` is known dead (see module doc)."""
    return stale_reason(path, stale) is not None


def guessed(reason: str | None) -> bool:
    """A stale reason that is an age guess (a holder on another host)."""
    return bool(reason) and reason.startswith("older than")


def release(path: str | None) -> None:
    if not path:
        return
    _HELD_WRITERS.discard(path)     # before the file goes (see acquire_writer)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def break_if_stale(path: str, stale: float = STALE_SECONDS, broken: list | None = None) -> bool:
    """Remove lock ``path`` if its holder is known dead; ``broken`` collects
    ``(path, reason)``."""
    reason = stale_reason(path, stale)
    if reason is None:
        return False
    release(path)
    if broken is not None:
        broken.append((path, reason))
    return True


def acquire(path: str, kind: str, *, timeout: float, stale: float = STALE_SECONDS,
            what: str = "") -> str:
    """Take exclusive lock ``path``, waiting up to ``timeout`` seconds; a stale
    lock is broken. Raises LockBusyError naming the holder."""
    makedirs(os.path.dirname(path))
    deadline = time.monotonic() + timeout
    while True:
        if try_create(path, kind):
            return path
        if break_if_stale(path, stale):
            continue
        if time.monotonic() > deadline:
            doc = read(path) or {}
            raise LockBusyError(f"{what or path}: lock {path} is held by pid {doc.get('pid', '?')} "
                                f"on {doc.get('host', '?')} (waited {timeout:.0f} s)")
        time.sleep(0.005)


@contextlib.contextmanager
def held(path: str, kind: str, *, timeout: float, stale: float = STALE_SECONDS, what: str = ""):
    """``with held(path, kind, timeout=...):`` — released on every exit path."""
    acquire(path, kind, timeout=timeout, stale=stale, what=what)
    try:
        yield path
    finally:
        release(path)


def list_locks(directory: str, prefix: str = "") -> list[str]:
    try:
        return sorted(os.path.join(directory, f) for f in os.listdir(directory)
                      if f.endswith(".lock") and f.startswith(prefix))
    except FileNotFoundError:
        return []


# -- the repository's writer/gc protocol ------------------------------------------------
# A checkpoint holds a shared writer lock from before any rank reads its dedup
# parent until its manifest is written; gc/prune hold the exclusive gc lock.
# Each side creates its own lock first and then looks for the other's, so at
# most one proceeds (docs/format.md, "Locks").

GC_LOCK = "gc.lock"

# Writer locks this process holds (async: one per pending version). A
# process that holds one may take another even while gc.lock exists: gc
# cannot pass its writer check while the first one is there, and backing
# off would deadlock (gc waits for our pending version's lock, we wait for
# gc). A path leaves the set before its file is removed, so "in the set"
# implies "the file exists".
_HELD_WRITERS: set[str] = set()


def _holds_another_writer(d: str, mine: str) -> bool:
    return any(os.path.dirname(p) == d and p != mine and os.path.lexists(p)
               for p in list(_HELD_WRITERS))


def acquire_writer(paths, *, timeout: float = 600.0, stale: float = STALE_SECONDS) -> str:
    """Take a writer lock (many writers at once); waits while a live gc runs.
    Returns its path for ``release``."""
    import secrets
    d = paths.locks_dir
    makedirs(d)
    gcl = os.path.join(d, GC_LOCK)
    deadline = time.monotonic() + timeout
    while True:
        path = os.path.join(d, f"write-{_HOST}-{os.getpid()}-{secrets.token_hex(4)}.lock")
        try_create(path, "write")
        if not os.path.lexists(gcl) or break_if_stale(gcl, stale) or _holds_another_writer(d, path):
            _HELD_WRITERS.add(path)
            return path
        release(path)                       # gc is running: back off
        if time.monotonic() > deadline:
            doc = read(gcl) or {}
            raise LockBusyError(f"repository {paths.root}: gc lock {gcl} held by pid "
                                f"{doc.get('pid', '?')} on {doc.get('host', '?')} for more than "
                                f"{timeout:.0f} s; checkpoint not started")
        time.sleep(0.05)


@contextlib.contextmanager
def gc_exclusive(paths, *, timeout: float = 60.0, stale: float = STALE_SECONDS):
    """Hold ``locks/gc.lock`` with no live writer lock: gc/prune run alone.
    Stale writer locks (dead holders) are removed on the way; yields the
    list of ``(path, reason)`` of the locks broken (see ``stale_reason``)."""
    d = paths.locks_dir
    makedirs(d)
    gcl = os.path.join(d, GC_LOCK)
    broken: list = []
    if not try_create(gcl, "gc"):
        if not break_if_stale(gcl, stale, broken) or not try_create(gcl, "gc"):
            doc = read(gcl) or {}
            raise LockBusyError(f"repository {paths.root}: another gc/prune holds {gcl} "
                                f"(pid {doc.get('pid', '?')} on {doc.get('host', '?')})")
    try:
        deadline = time.monotonic() + timeout
        while True:
            writers = [p for p in list_locks(d, "write-") if not break_if_stale(p, stale, broken)]
            if not writers:
                break
            if time.monotonic() > deadline:
                raise LockBusyError(f"repository {paths.root}: {len(writers)} checkpoint(s) in "
                                    f"flight ({', '.join(os.path.basename(w) for w in writers[:3])}); "
                                    f"nothing deleted")
            time.sleep(0.05)
        yield broken
    finally:
        release(gcl)
