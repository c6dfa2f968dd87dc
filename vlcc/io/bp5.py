"""Per-rank ADIOS2 BP5 data files (docs/format.md, section 3).

Each rank writes its own BP5 file per version (the PyPI adios2 is a serial
build); every stored block is one 1-D uint8 variable, so any byte range of it
(a chunk, or a run of chunks) can be read back with a selection."""

from __future__ import annotations

import itertools
import os
import threading

import adios2
import numpy as np

from ..errors import CorruptionError, StorageError, storage_error

_TLS = threading.local()


def _adios() -> "adios2.Adios":
    # One ADIOS2 factory per thread: the engine's flusher and prefetcher
    # threads do I/O while the application thread restores, and ADIOS2
    # objects are not thread-safe.
    a = getattr(_TLS, "adios", None)
    if a is None:
        # adios2.Adios() segfaults when HOME is unset (seen with a clean
        # environment, e.g. a C program embedding vlcc): give it one.
        if "HOME" not in os.environ:
            import pwd
            os.environ["HOME"] = pwd.getpwuid(os.getuid()).pw_dir or "/tmp"
        a = _TLS.adios = adios2.Adios()
    return a


_IO_COUNTER = itertools.count()


def _new_io(tag: str):
    name = f"vlcc-{tag}-{next(_IO_COUNTER)}"
    io = _adios().declare_io(name)
    io.set_engine("BP5")
    # Min/max statistics of uint8 byte streams are useless to us and cost
    # ~0.3 s per 64 MiB at put time; vlcc keeps its own per-chunk hashes.
    io.set_parameters({"StatsLevel": "0"})
    return io, name


def _drop_io(name: str) -> None:
    try:
        _adios().remove_io(name)
    except Exception:
        pass


class BlockWriter:
    """Write named byte buffers into one BP5 file. ``put`` keeps a reference to
    the buffer until ``close`` (deferred put: no copy)."""

    def __init__(self, path: str):
        self.path = path
        self._io, self._name = _new_io("w")
        try:
            self._engine = self._io.open(path, adios2.bindings.Mode.Write)
        except Exception as exc:  # adios2 raises RuntimeError/ValueError with a message
            raise StorageError(f"cannot create data file {path}: {exc}") from exc
        self._keep = []

    def put(self, var: str, data: np.ndarray) -> None:
        data = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
        n = data.size
        v = self._io.define_variable(var, data, [n], [0], [n])
        self._engine.put(v, data, adios2.bindings.Mode.Deferred)
        self._keep.append(data)

    def close(self) -> None:
        if self._keep is None:  # already closed (or failed): idempotent
            return
        try:
            self._engine.close()
        except Exception as exc:
            # ADIOS2's engine destructor retries the failed write and, when it
            # fails again (disk still full), throws from a destructor: the C++
            # runtime then aborts the whole process. Truncating what this file
            # wrote gives the space back, so dropping the engine below is safe.
            _truncate_tree(self.path)
            raise StorageError(f"writing data file {self.path} failed: {_adios_message(exc)}") from exc
        finally:
            self._keep = None
            _drop_io(self._name)


def _adios_message(exc: BaseException) -> str:
    """ADIOS2's exception text without its terminal colour codes, with the
    errno spelled out (e.g. 'no space left on device')."""
    import errno as _errno
    import re
    msg = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    m = re.search(r"errno = (\d+)", msg)
    if m:
        code = int(m.group(1))
        reason = {_errno.ENOSPC: "no space left on device", _errno.EROFS: "read-only file system",
                  _errno.EDQUOT: "disk quota exceeded"}.get(code, os.strerror(code))
        msg = f"{reason} ({msg})"
    return msg


def _truncate_tree(path: str) -> None:
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                os.truncate(os.path.join(root, f), 0)
            except OSError:
                pass


class BlockReader:
    """Random-access reads of byte ranges of variables in one BP5 file."""

    def __init__(self, path: str, *, what: str = ""):
        self.path = path
        if not os.path.isdir(path):
            raise CorruptionError(f"{what}data file {path} is missing")
        self._io, self._name = _new_io("r")
        try:
            self._engine = self._io.open(path, adios2.bindings.Mode.ReadRandomAccess)
        except Exception as exc:
            raise CorruptionError(f"{what}cannot open data file {path}: {exc}") from exc
        self._vars = {}

    def read_into(self, var: str, start: int, out: np.ndarray) -> None:
        """Read ``out.size`` bytes of variable ``var`` from byte ``start`` into ``out``."""
        v = self._vars.get(var)
        if v is None:
            v = self._io.inquire_variable(var)
            if v is None:
                raise CorruptionError(f"variable {var!r} missing in data file {self.path}")
            self._vars[var] = v
        total = v.shape()[0]
        if start + out.size > total:
            raise CorruptionError(f"data file {self.path}: variable {var!r} has {total} bytes, "
                                  f"need {start + out.size} (truncated)")
        v.set_selection([[start], [out.size]])
        try:
            self._engine.get(v, out, adios2.bindings.Mode.Sync)
        except Exception as exc:
            raise CorruptionError(f"reading {var!r} from data file {self.path} failed: {exc}") from exc

    def close(self) -> None:
        try:
            self._engine.close()
        except Exception:
            pass
        _drop_io(self._name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def write_error(path: str, exc: OSError) -> StorageError:
    return storage_error(exc, f"cannot write data file {path}")
