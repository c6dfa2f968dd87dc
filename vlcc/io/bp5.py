"""ADIOS2 BP5 data files (docs/format.md, sections 3 and 3.4).

A rank writes its own BP5 file, or the ranks of a node share one (the PyPI
adios2 is a serial build: the node's ranks write their ranges of data.0, one
of them the metadata); every stored block is one 1-D uint8 variable, so any byte range of it
(a chunk, or a run of chunks) can be read back with a selection."""

from __future__ import annotations

import itertools
import mmap
import os
import shutil
import stat
import weakref

import numpy as np

from ..errors import CorruptionError, StorageError
from ..layout.stored import Range, is_lazy, materialize
from ..repo import space
from ..repo.checksums import chunk_hash
from ..repo.fsutil import read_regular
from . import adios_c, busguard

# Space reserved before ADIOS2 writes (repo/space.py), measured with the PyPI
# ADIOS2 2.12: data.0 pads each variable to 8 bytes; md.0 and mmd.0 grow by
# ~90 and ~55 bytes per variable (+ its name); md.idx is 146 bytes. close()
# also writes profiling.json (~1.5 KiB; the Profile parameter does not stop
# it) through a truncating ofstream, so it cannot be preallocated, and on a
# disk another rank just filled its write aborted the process (seen in
# tests/repo/test_space.py): it is pointed at /dev/null before close and the link
# removed after (no reader needs it). A placeholder holds CLOSE_MARGIN from
# before open until after close; it is released *before* close only when
# the preallocation failed, to give the metadata of a close without data room.
_PER_VAR = 512
DATA = "data.0"                 # the BP5 file's data (the variables' bytes)
BULK_TMP = "data.0.vlcc-tmp"    # data.0 while vlcc writes it (BlockWriter, bulk)
_FILE_MARGIN = 4096
CLOSE_MARGIN = 32 << 10
PROFILE_FILE = "profiling.json"


def _reservations(nbytes: int, nvars: int) -> dict[str, int]:
    return {DATA: nbytes + 64 * nvars + _FILE_MARGIN,
            "md.0": _FILE_MARGIN + _PER_VAR * nvars,
            "mmd.0": _FILE_MARGIN + _PER_VAR * nvars,
            "md.idx": _FILE_MARGIN}

_IO_COUNTER = itertools.count()

# Where BP5 puts each variable's bytes in data.0 (ADIOS2 2.10-2.12, measured
# in tests/io/test_bp5_layout.py): puts smaller than MinDeferredSize are copied
# into ADIOS2's buffer as they come, larger ones are written from the
# caller's memory at close, after all the small ones; each group in put order,
# back to back (uint8: no padding). The parameter is set explicitly so the
# rule does not depend on ADIOS2's default. Writers record the offsets this
# rule gives ("bp5_offsets" in the rank index, docs/format.md 3) only after
# checking the bytes at both ends of every variable in the closed file, so a
# different ADIOS2 layout means "no offsets" (reads go through ADIOS2), never
# wrong ones.
MIN_DEFERRED = 4 << 20
_PROBE = 64


def layout_offsets(sizes: list[tuple[str, int]], min_deferred: int = MIN_DEFERRED) -> dict[str, int]:
    """The byte offset in data.0 of each variable put with ``sizes`` (name,
    nbytes) in this order, by the rule above."""
    out, pos = {}, 0
    for deferred in (False, True):
        for name, n in sizes:
            if (n >= min_deferred) == deferred:
                out[name] = pos
                pos += n
    return out



def _bytes(data, at: int, k: int) -> np.ndarray:
    """Bytes [at, at + k) of an array or of lazy bytes."""
    return materialize(Range(data, at, k)) if is_lazy(data) else data[at:at + k]


class BlockWriter:
    """Write named byte buffers into one BP5 file. ``put`` keeps a reference to
    the buffer until ``close`` (deferred put: no copy). Uses ADIOS2's C API
    (io/adios_c.py) so the GIL is released while bytes move.

    Bulk data (``bulk``, the default): ADIOS2 writes the BP5 metadata, and
    its data.0 is a link to /dev/null; vlcc writes data.0 itself, in the
    layout ADIOS2 would (``layout_offsets``), with O_DIRECT from the callers'
    buffers (io/direct.py: no page-cache copy). After close the file is
    checked through ADIOS2's own reader (both ends of every variable); if
    ADIOS2 placed anything differently, the file is written again the plain
    way. So the result is always the BP5 file ADIOS2 would write."""

    def __init__(self, path: str, *, reserve: int | None = None, nvars: int = 1, what: str = "",
                 bulk: bool = True, min_deferred: int = MIN_DEFERRED, data_file: str | None = None):
        """With ``reserve`` (the bytes that will be put, in ``nvars``
        variables) the space is checked before ADIOS2 opens the file and
        preallocated to its files right after (repo/space.py), so a full disk
        is a StorageError naming ``what`` and the file, before any data is
        written, never an abort in ADIOS2's close.

        ``data_file``: a node file (docs/format.md, 3.4): the ranks of the node
        wrote data.0 already, as ``data_file``, in the layout of the puts
        (``min_deferred`` 1: put order); the puts only describe the variables
        (their buffers are never read: data.0 goes to /dev/null), and close
        leaves data.0 a link to /dev/null: ``place_node_data`` then moves
        ``data_file`` into place and checks the layout through ADIOS2."""
        self.path = path
        self._bulk = bulk or data_file is not None
        self._data_file = data_file
        self._min_deferred = int(min_deferred)
        self._name = f"vlcc-w-{next(_IO_COUNTER)}".encode()
        self._keep = None
        self._placeholder = None
        self._reserved: list[str] = []
        self._reserving = reserve is not None
        if reserve is not None:
            self._check_and_hold(int(reserve), max(1, int(nvars)), what)
        L = adios_c.lib()
        self._io = L.adios2_declare_io(adios_c.adios(), self._name)
        L.adios2_set_engine(self._io, b"BP5")
        # Min/max statistics of uint8 byte streams are useless to us and cost
        # ~0.3 s per 64 MiB at put time; vlcc keeps its own per-chunk hashes.
        L.adios2_set_parameter(self._io, b"StatsLevel", b"0")
        # No profiling.json per data file: one file fewer to write and fsync.
        L.adios2_set_parameter(self._io, b"Profile", b"Off")
        L.adios2_set_parameter(self._io, b"MinDeferredSize", str(self._min_deferred).encode())
        self.offsets: dict[str, int] | None = None   # after close: where each variable is in data.0
        if self._bulk:
            try:
                os.makedirs(path, exist_ok=True)
                os.symlink(os.devnull, os.path.join(path, DATA))
            except OSError as exc:
                self._drop()
                self._release_placeholder()
                raise StorageError(f"cannot create data file {path}: {exc.strerror or exc}") from exc
        self._engine = L.adios2_open(self._io, os.fsencode(path), adios_c.MODE_WRITE)
        if self._engine == adios_c.ffi.NULL:
            self._drop()
            self._release_placeholder()
            raise StorageError(f"cannot create data file {path}: {_diagnose(path)}")
        self._keep = []
        if reserve is not None:
            self._preallocate(int(reserve), max(1, int(nvars)), what)

    def _check_and_hold(self, nbytes: int, nvars: int, what: str) -> None:
        """Before ADIOS2 is involved: enough room for everything, and a
        placeholder holding the room close() needs beyond the preallocated files."""
        total = sum(_reservations(nbytes, nvars).values()) + CLOSE_MARGIN
        space.check_room(self.path, total, what, "data file", inodes=8)
        d = os.path.dirname(self.path)
        self._placeholder = os.path.join(d, f".tmp-reserve-{os.path.basename(self.path)}")
        try:
            space.preallocate(self._placeholder, CLOSE_MARGIN, what or f"data file {self.path}")
        except StorageError:
            self._release_placeholder()
            raise

    def _preallocate(self, nbytes: int, nvars: int, what: str) -> None:
        """Give ADIOS2's open files their blocks now. On failure (another
        writer took the space since the check) the engine is closed with
        nothing put: its metadata fits in the room the placeholder frees."""
        try:
            for name, n in _reservations(nbytes, nvars).items():
                f = os.path.join(self.path, name)
                if name == DATA and self._data_file is not None:
                    continue                                # the node's ranks wrote it
                if name == DATA and self._bulk:
                    f = os.path.join(self.path, BULK_TMP)   # vlcc writes it (created here)
                    space.preallocate(f, n, what or f"data file {self.path}")
                    self._reserved.append(f)
                elif os.path.exists(f):      # only files this ADIOS2 created at open
                    space.preallocate(f, n, what or f"data file {self.path}")
                    self._reserved.append(f)
        except StorageError:
            self._release_placeholder()   # room for the metadata of a close without data
            self._reserved = []
            self._keep = []
            try:
                self.close()
            except StorageError:
                pass
            raise

    def _layout(self) -> dict[str, int]:
        """Where ``layout_offsets`` puts each variable put so far."""
        return layout_offsets([(var, int(data.size)) for var, data, _p in self._keep],
                              self._min_deferred)

    def _write_bulk(self) -> dict[str, int] | None:
        """data.0 (a /dev/null link while ADIOS2 ran) written by vlcc; the
        offsets, checked through ADIOS2. Falls back to a plain ADIOS2 write."""
        from .direct import write_concat
        offs = self._layout()
        by = {var: data for var, data, _p in self._keep}
        tmp, final = os.path.join(self.path, BULK_TMP), os.path.join(self.path, DATA)
        write_concat(tmp, [by[v] for v in sorted(offs, key=offs.get)])
        os.replace(tmp, final)
        if self._probe_ok(offs):
            return offs
        return self._rewrite_plain()

    def _probe_ok(self, offs: dict[str, int]) -> bool:
        """Does ADIOS2 read each variable's first and last bytes from where
        vlcc put them?"""
        try:
            # written by this process just now: its metadata is trusted (no child probe)
            with BlockReader(self.path, metadata=bp5_checksums(self.path)) as rd:
                for var, data, _p in self._keep:
                    k = min(_PROBE, data.size)
                    got = np.empty(k, np.uint8)
                    for at in (0, data.size - k):
                        rd.read_into(var, at, got)
                        if not np.array_equal(got, _bytes(data, at, k)):
                            return False
        except (CorruptionError, OSError):
            return False
        return True

    def _rewrite_plain(self) -> dict[str, int] | None:
        """This ADIOS2 lays data.0 out differently: write the file again through it."""
        shutil.rmtree(self.path, ignore_errors=True)
        w = BlockWriter(self.path, bulk=False)
        for var, data, _p in self._keep:
            w.put(var, data)        # lazy bytes are copied out there
        w.close()
        return w.offsets

    def _checked_offsets(self) -> dict[str, int] | None:
        """``layout_offsets`` of what was put, if the closed data.0 holds each
        variable's first and last bytes there (pread of pages just written:
        in the page cache); None otherwise."""
        offs = self._layout()
        try:
            fd = os.open(os.path.join(self.path, DATA), os.O_RDONLY)
        except OSError:
            return None
        try:
            if os.fstat(fd).st_size < sum(int(d.size) for _v, d, _p in self._keep):  # ADIOS2 may pad the end
                return None
            for var, data, _p in self._keep:
                k = min(_PROBE, data.size)
                at = offs[var]
                if (os.pread(fd, k, at) != data[:k].tobytes()
                        or os.pread(fd, k, at + data.size - k) != data[data.size - k:].tobytes()):
                    return None
        except OSError:
            return None
        finally:
            os.close(fd)
        return offs

    def _release_placeholder(self) -> None:
        if self._placeholder is not None:
            try:
                os.unlink(self._placeholder)
            except OSError:
                pass
            self._placeholder = None

    def _drop(self) -> None:
        res = adios_c.ffi.new("int *")
        adios_c.lib().adios2_remove_io(res, adios_c.adios(), self._name)

    def put(self, var: str, data) -> None:
        """``data``: an array, or lazy bytes (``size``, ``copy_to``,
        ``backing``: layout/stored.py) that only a bulk writer writes
        without a copy (ADIOS2 is then given ``backing``, as its data.0 goes
        to /dev/null)."""
        lazy = is_lazy(data)
        if lazy and not self._bulk:     # ADIOS2 writes these bytes itself
            data, lazy = materialize(data), False
        if not lazy:
            data = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
        n = int(data.size)
        L = adios_c.lib()
        sh = adios_c.sizes(n)
        v = L.adios2_define_variable(self._io, var.encode(), adios_c.TYPE_UINT8, 1, sh,
                                     adios_c.sizes(0), sh, adios_c.CONSTANT_DIMS)
        if v == adios_c.ffi.NULL:
            raise StorageError(f"cannot define variable {var!r} in data file {self.path}")
        ptr = adios_c.ffi.from_buffer(data.backing if lazy else data)
        if L.adios2_put(self._engine, v, ptr, adios_c.MODE_DEFERRED) != 0:
            raise StorageError(f"cannot write variable {var!r} to data file {self.path}")
        self._keep.append((var, data, ptr))

    def close(self) -> None:
        if self._keep is None:  # already closed (or failed): idempotent
            return
        prof = os.path.join(self.path, PROFILE_FILE)
        if self._reserving and not os.path.lexists(prof):
            try:
                os.symlink(os.devnull, prof)
            except OSError:
                self._release_placeholder()   # give its room to the file instead
        try:
            if adios_c.lib().adios2_close(self._engine) != 0:
                # ADIOS2's engine destructor retries the failed write and, when it
                # fails again (disk still full), throws from a destructor: the C++
                # runtime then aborts the process. Truncating what this file wrote
                # gives the space back, so dropping the engine below is safe.
                _truncate_tree(self.path)
                raise StorageError(f"writing data file {self.path} failed: {_diagnose(self.path)}")
            if os.path.islink(prof):      # before the file is read back: readers refuse links
                os.unlink(prof)
            if self._data_file is not None:
                self.offsets = self._layout()     # data.0 follows: place_node_data
            elif self._bulk:
                self.offsets = self._write_bulk()
            else:
                self.offsets = self._checked_offsets()
            for f in self._reserved:      # give back what was reserved but not used
                if os.path.exists(f):
                    space.trim(f)
        finally:
            self._keep = None
            self._drop()
            if os.path.islink(prof):
                os.unlink(prof)
            self._release_placeholder()


_PROBE_VARS = 16


def _sample(items: list, k: int) -> list:
    """At most ``k`` of ``items``: the first, the last and evenly spaced
    ones between, in order."""
    if len(items) <= k:
        return items
    return [items[round(i * (len(items) - 1) / (k - 1))] for i in range(k)]


def place_node_data(path: str, data_file: str, offsets: dict[str, int], sizes: dict[str, int]) -> None:
    """A node file (docs/format.md, 3.4) whose metadata a ``BlockWriter`` with
    ``data_file`` wrote: move ``data_file`` (every rank's range written) into
    place as data.0 and check the layout through ADIOS2's reader. Without
    the bytes (they stayed with the ranks) the check compares each
    variable's first and last bytes as ADIOS2 reads them with the bytes at
    vlcc's offset, on a sample of the variables (the first, the last and
    evenly spaced ones, at most ``_PROBE_VARS``): a layout other than vlcc's
    model moves every variable after the first difference, and reading all
    of them cost ~60 ms per version of ~450 variables on the node leader."""
    final = os.path.join(path, DATA)
    os.replace(data_file, final)
    os.truncate(final, sum(sizes.values()))     # the last rank's O_DIRECT padding
    try:
        fd = os.open(final, os.O_RDONLY)
        try:
            with BlockReader(path, metadata=bp5_checksums(path)) as rd:   # just written here
                for var in _sample(list(sizes), _PROBE_VARS):
                    n = sizes[var]
                    k = min(_PROBE, n)
                    got = np.empty(k, np.uint8)
                    for at in (0, n - k):
                        rd.read_into(var, at, got)
                        if os.pread(fd, k, offsets[var] + at) != got.tobytes():
                            raise StorageError(
                                f"node data file {path}: ADIOS2 places variable {var!r} "
                                f"elsewhere than vlcc wrote it (an ADIOS2 with another BP5 "
                                f"layout; tests/io/test_bp5_layout.py)")
        finally:
            os.close(fd)
    except (CorruptionError, OSError) as exc:
        raise StorageError(f"node data file {path}: layout check failed: {exc}") from exc


# The BP5 files ADIOS2 parses when it opens a file for reading. A flipped
# byte in them crashes ADIOS2 (SIGSEGV/abort), so format 2 records their
# xxh3-128 in the rank index and readers check them before ADIOS2 opens the
# file. data.* holds chunk bytes, which carry their own hashes.
METADATA_FILES = ("md.0", "md.idx", "mmd.0")


def bp5_checksums(path: str) -> dict[str, str]:
    """xxh3-128 of each BP5 metadata file of the (closed) file ``path``."""
    out = {}
    for name in METADATA_FILES:
        p = os.path.join(path, name)
        if os.path.lexists(p):   # a FIFO, device or link here is a CorruptionError, never read
            out[name] = chunk_hash(read_regular(p, f"BP5 metadata of {path}"))
    return out


def check_metadata(path: str, expected: dict[str, str], what: str = "") -> None:
    """Raise CorruptionError unless every metadata file of ``path`` hashes to
    ``expected`` (and none of the recorded ones is missing)."""
    got = bp5_checksums(path)
    for name, h in expected.items():
        if got.get(name) != h:
            state = "missing" if name not in got else "checksum mismatch"
            raise CorruptionError(f"{what}data file {path}: BP5 metadata {name} {state} "
                                  f"(damaged; not opened)")
    extra = set(got) - set(expected)
    if extra:
        raise CorruptionError(f"{what}data file {path}: unexpected BP5 metadata "
                              f"{', '.join(sorted(extra))} (damaged; not opened)")


_LIBC = None


def _residency(arr: np.ndarray, lo: int, hi: int) -> np.ndarray | None:
    """Per page of bytes [lo, hi) (``lo`` page-aligned) of the mapping
    ``arr``: is it in memory (mincore)? None when it cannot tell."""
    global _LIBC
    import ctypes
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
        _LIBC.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    npages = (hi - lo + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    vec = np.empty(npages, np.uint8)
    if _LIBC.mincore(arr.ctypes.data + lo, hi - lo, vec.ctypes.data) != 0:
        return None
    return (vec & 1).astype(bool)


def _diagnose(path: str) -> str:
    """Why a write under ``path`` failed: ADIOS2's C API gives no errno."""
    d = path
    while d and not os.path.isdir(d):
        d = os.path.dirname(d)
    try:
        st = os.statvfs(d or ".")
    except OSError as exc:
        return exc.strerror or str(exc)
    if st.f_flag & os.ST_RDONLY:
        return "read-only file system"
    if st.f_bavail * st.f_frsize < (1 << 20):
        return "no space left on device"
    if st.f_files and st.f_favail < 16:
        return "no space left on device (no free inode)"
    if not os.access(d, os.W_OK):
        return "permission denied"
    return "ADIOS2 reported an error (see its message on stderr)"


def _truncate_tree(path: str) -> None:
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                os.truncate(os.path.join(root, f), 0)
            except OSError:
                pass


_PROBED: dict[tuple, str | None] = {}    # metadata bytes' hash -> why ADIOS2 failed (None: it did not)
_PROBE_CODE = ("import sys; from vlcc.io import bp5; bp5._PROBING = True; "
               "bp5.BlockReader(sys.argv[1]).close()")
_PROBING = False     # set in the probe's child process


def probe(path: str, what: str = "") -> None:
    """Let ADIOS2 parse the BP5 metadata of ``path`` in a child process first,
    when no checksum vouches for it (format 1, or an index re-sealed without
    ``bp5``): damaged metadata crashes ADIOS2 (segfault, abort), and a crash
    there must be a CorruptionError here, not the end of this process. The
    verdict is cached by the metadata's bytes (one child per distinct file)."""
    key = tuple(sorted(bp5_checksums(path).items()))
    if key not in _PROBED:
        import subprocess
        import sys
        pkg = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        from .._mpi import without_launcher
        env = dict(without_launcher(), PYTHONPATH=os.pathsep.join(     # the child is no MPI rank
            [pkg] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
        try:
            r = subprocess.run([sys.executable, "-c", _PROBE_CODE, path], env=env,
                               capture_output=True, timeout=300)
            _PROBED[key] = (None if r.returncode == 0 else
                            f"ADIOS2 {'crashed (signal %d)' % -r.returncode if r.returncode < 0 else 'failed'}"
                            f" parsing its metadata")
        except subprocess.TimeoutExpired:
            _PROBED[key] = "ADIOS2 did not finish parsing its metadata"
    why = _PROBED[key]
    if why:
        raise CorruptionError(f"{what}data file {path}: {why} (damaged; this format keeps no "
                              f"checksum of it)")


def read_profile(path: str) -> str:
    """Where ADIOS2 2.12's BP5 reader writes its profile when it closes
    ``path``: ``/tmp/<file name>_<pid in hex>_profiling.json``, always (no
    parameter turns it off; BP5Reader::FlushProfiler)."""
    return f"/tmp/{os.path.basename(os.path.normpath(path))}_{os.getpid():x}_profiling.json"


def _remove_read_profile(path: str) -> None:
    # one file per data file name and process, left in /tmp by every reading
    # process (2,600 after one run of the test suite): nothing reads it
    try:
        os.unlink(read_profile(path))
    except OSError:
        pass


def _stamp(path: str) -> tuple | None:
    """What changes when a file's bytes do: inode, size, modification time."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


class BlockReader:
    """Random-access reads of byte ranges of variables in one BP5 file
    (ADIOS2's C API: the GIL is released while bytes move)."""

    def __init__(self, path: str, *, what: str = "", metadata: dict[str, str] | None = None,
                 offsets: dict[str, int] | None = None):
        """``offsets``: where each variable starts in data.0, as the writer
        recorded it (``BlockWriter.offsets``); with it, ``view`` maps bytes
        of the file instead of asking ADIOS2 to copy them."""
        self.path = path
        self._offsets = offsets or {}
        self._map: np.ndarray | None = None
        self._mm = None
        self._stamp: tuple | None = None     # data.0's identity when mapped
        self._guard: busguard.Guard | None = None
        if not os.path.isdir(path):
            raise CorruptionError(f"{what}data file {path} is missing")
        for name in os.listdir(path):   # ADIOS2 and mapped reads would block on a FIFO
            st = os.lstat(os.path.join(path, name))
            if not stat.S_ISREG(st.st_mode):
                raise CorruptionError(f"{what}data file {path}: {name} is not a regular file "
                                      f"(a link, FIFO or device): not opened")
        if metadata is not None:
            check_metadata(path, metadata, what)
        # Format 1 (or an index without `bp5`) keeps no checksum of the BP5
        # metadata: ADIOS2 parses it first in a child process (``probe``).
        self._unchecked = metadata is None and not _PROBING
        self._vars: dict = {}
        self._what = what  # "version V, provider P, rank R: " prefixed to read errors
        self._engine = None
        if not self._offsets:
            self._open()
        # else ADIOS2 opens the file only if a read needs it (mapped reads do not):
        # opening parses the metadata, a cost per file of every N->M restore.

    def _open(self) -> None:
        path, what = self.path, self._what
        if self._unchecked:
            probe(path, what)
        self._name = f"vlcc-r-{next(_IO_COUNTER)}".encode()
        L = adios_c.lib()
        self._io = L.adios2_declare_io(adios_c.adios(), self._name)
        L.adios2_set_engine(self._io, b"BP5")
        # ADIOS2's default POSIX transport retries a read past the end of a
        # truncated data file forever (a hang); stdio reports the short read.
        tindex = adios_c.ffi.new("size_t *")
        if L.adios2_add_transport(tindex, self._io, b"File") == 0:
            L.adios2_set_transport_parameter(self._io, tindex[0], b"Library", b"stdio")
        self._engine = L.adios2_open(self._io, os.fsencode(path), adios_c.MODE_READ_RANDOM)
        if self._engine == adios_c.ffi.NULL:
            self._engine = None
            self._drop()
            raise CorruptionError(f"{what}cannot open data file {path} (damaged or not BP5)")

    @property
    def mapped(self) -> bool:
        """Are the variables' places in data.0 known (reads are views)?"""
        return bool(self._offsets)

    def _drop(self) -> None:
        res = adios_c.ffi.new("int *")
        adios_c.lib().adios2_remove_io(res, adios_c.adios(), self._name)

    def read_into(self, var: str, start: int, out: np.ndarray) -> None:
        """Read ``out.size`` bytes of variable ``var`` from byte ``start`` into ``out``."""
        if self._engine is None:
            self._open()
        L = adios_c.lib()
        entry = self._vars.get(var)
        if entry is None:
            v = L.adios2_inquire_variable(self._io, var.encode())
            if v == adios_c.ffi.NULL:
                raise CorruptionError(f"{self._what}variable {var!r} missing in data file {self.path}")
            shape = adios_c.ffi.new("size_t[1]")
            if L.adios2_variable_shape(shape, v) != 0:
                raise CorruptionError(f"{self._what}variable {var!r} in data file {self.path}: no shape")
            entry = self._vars[var] = (v, int(shape[0]))
        v, total = entry
        if start + out.size > total:
            raise CorruptionError(f"{self._what}data file {self.path}: variable {var!r} has {total} bytes, "
                                  f"need {start + out.size} (truncated)")
        if not out.size:
            return
        if not (out.flags.c_contiguous and out.flags.writeable):
            raise ValueError("read_into needs a writable contiguous buffer")
        L.adios2_set_selection(v, 1, adios_c.sizes(start), adios_c.sizes(out.size))
        if L.adios2_get(self._engine, v, adios_c.ffi.from_buffer(out), adios_c.MODE_SYNC) != 0:
            raise CorruptionError(f"{self._what}reading {var!r} from data file {self.path} failed "
                                  f"(truncated or damaged)")

    def view(self, var: str, start: int, n: int) -> np.ndarray | None:
        """Bytes ``[start, start + n)`` of variable ``var`` as a read-only view
        of data.0 mapped into memory (the page cache itself: no read copy), or
        None when the writer recorded no offset for ``var`` (use
        ``read_into``). Ranges beyond the end of the file (truncated) are a
        CorruptionError here, before anything touches the mapping (which
        would be SIGBUS)."""
        at = self._offsets.get(var)
        if at is None:
            return None
        m = self._map
        if m is None:
            m = self._map = self._map_data()
            if m is None:          # cannot be guarded against SIGBUS: not mapped
                self._offsets = {}
                return None
        if at + start + n > m.size:
            raise CorruptionError(f"{self._what}data file {self.path}: variable {var!r} bytes "
                                  f"{start}..{start + n} lie beyond the end of data.0 "
                                  f"({m.size} bytes; truncated)")
        # No MADV_POPULATE_READ: it reads synchronously, while page faults
        # let the kernel's readahead overlap the disk with the caller's copy
        # (measured cold, 128 MiB: populate 148 ms, faults ~120 ms).
        return m[at + start:at + start + n]

    def _map_data(self) -> np.ndarray | None:
        """data.0 mapped, its range guarded (io/busguard.py: a truncation while
        it is read is a CorruptionError, not SIGBUS); None when no guard."""
        if not busguard.available():
            return None
        p = os.path.join(self.path, DATA)
        try:
            with open(p, "rb") as f:
                st = os.fstat(f.fileno())
                size = st.st_size
                if not size:
                    return np.empty(0, np.uint8)
                mm = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ)
        except OSError as exc:
            raise CorruptionError(f"{self._what}data file {self.path}: cannot map data.0: "
                                  f"{exc.strerror or exc}") from exc
        except ValueError as exc:    # shrank between fstat and mmap: truncated meanwhile
            raise CorruptionError(f"{self._what}data file {self.path}: data.0 was truncated "
                                  f"while being mapped ({exc})") from exc
        arr = np.frombuffer(mm, np.uint8)
        # the identity of the file actually mapped (not a second look by path)
        self._stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        guard = busguard.Guard(arr.ctypes.data, size)
        if not guard.ok:
            del arr
            mm.close()
            return None
        self._mm, self._guard = mm, guard
        # a reader never closed must not leave the range guarded once the
        # mapping is gone (another mapping may take the addresses)
        weakref.finalize(arr, guard.close)
        return arr

    def will_need(self, ranges: list[tuple[str, int, int]]) -> int:
        """Ask the kernel to read ahead (MADV_WILLNEED) those of ``ranges``
        ((var, start, n): bytes of variables) whose pages are not all in the
        page cache (one mincore over their span): a gappy cold read (a
        column split: some pieces of each row of tiles) then has its disk
        reads in flight together, instead of each fault's readahead fetching
        the bytes between the pieces. Nothing is advised when warm (WILLNEED
        on resident pages measured 14 ms per 85 MiB). Returns the ranges
        advised. Call after ``view`` mapped the file."""
        m = self._map
        if m is None or self._mm is None or not ranges:
            return 0
        page = mmap.PAGESIZE
        spans = []
        for var, start, n in ranges:
            at = self._offsets.get(var)
            if at is not None and n > 0 and at + start + n <= m.size:
                spans.append((at + start, at + start + n))
        if not spans:
            return 0
        base = min(lo for lo, _hi in spans) // page * page
        res = _residency(m, base, max(hi for _lo, hi in spans))
        if res is None:
            return 0
        done = 0
        for lo, hi in spans:
            p0, p1 = (lo - base) // page, (hi - base + page - 1) // page
            if res[p0:p1].all():
                continue
            try:
                self._mm.madvise(mmap.MADV_WILLNEED, base + p0 * page, (p1 - p0) * page)
                done += 1
            except (OSError, ValueError, AttributeError):
                return done
        return done

    def check_unchanged(self) -> None:
        """Raise CorruptionError if data.0 was written, replaced or resized
        since it was mapped (its size, modification time or inode moved):
        bytes verified through the mapping before are no longer vouched for.
        A truncation meanwhile is reported as such (``check_intact``)."""
        self.check_intact()
        if self._stamp is not None and _stamp(os.path.join(self.path, DATA)) != self._stamp:
            raise CorruptionError(f"{self._what}data file {self.path}: data.0 changed while "
                                  f"being restored (written, replaced or resized)")

    def check_intact(self) -> None:
        """Raise CorruptionError if data.0 shrank while mapped pages were read
        (those pages read as zeros: nothing read from them may be used)."""
        n = self._guard.hits() if self._guard is not None else 0
        if n:
            raise CorruptionError(f"{self._what}data file {self.path}: data.0 was truncated "
                                  f"while being read ({n} page(s) gone)")

    def close(self) -> None:
        # Views handed out keep the mapping alive until they are dropped (no
        # longer guarded: callers drop them before closing the reader).
        if self._guard is not None:
            self._guard.close()
            self._guard = None
        self._map = self._mm = None
        if self._engine is not None:
            adios_c.lib().adios2_close(self._engine)
            self._engine = None
            self._drop()
            _remove_read_profile(self.path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

