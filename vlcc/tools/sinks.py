"""Output formats of ``vlcc export``: one small class per format, chosen by
the file name's extension. Each takes array slabs of global variables
(``write``) and attributes (``attr``).

* ``.bp`` (and any other name): ADIOS2 BP5 through ``adios2.Stream``, one step;
  slabs are written as blocks of one global variable (streamed).
* ``.h5`` / ``.hdf5``: HDF5 through h5py (extra ``bench``); a dataset per
  variable, slabs written into it (streamed).
* ``.npz``: numpy's zip of arrays; each array is assembled in memory before
  the file is written (for small states only); attributes go to ``__attrs__``
  as JSON."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np

from ..errors import ArgumentError, StorageError, require


class Sink:
    def __init__(self, path: str):
        self.path = path

    def write(self, name: str, a: np.ndarray, gshape, offset) -> None:
        raise NotImplementedError

    def attr(self, name: str, value) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def abort(self) -> None:
        """Close and remove what was written."""
        try:
            self.close()
        except Exception:
            pass
        shutil.rmtree(self.path, ignore_errors=True) if os.path.isdir(self.path) else \
            os.path.exists(self.path) and os.remove(self.path)


class BP5Sink(Sink):
    def __init__(self, path: str):
        import adios2
        super().__init__(path)
        try:
            self.s = adios2.Stream(path, "w")
        except Exception as exc:
            raise StorageError(f"cannot create ADIOS2 file {path}: {exc}") from exc
        self.s.begin_step()
        self.pending = 0

    def write(self, name, a, gshape, offset):
        self.pending += a.nbytes
        self.s.write(name, np.ascontiguousarray(a), list(gshape), list(offset), list(a.shape))

    def attr(self, name, value):
        self.s.write_attribute(name, value)

    def close(self):
        if self.s is not None:
            # ADIOS2 writes the step's buffered bytes at end_step and aborts
            # the process (SIGABRT) if the disk fills meanwhile: check first
            # (the export's own space check covers a disk filled by others since).
            st = os.statvfs(os.path.dirname(os.path.abspath(self.path)))
            if self.pending + (1 << 20) > st.f_bavail * st.f_frsize:
                self.s = None      # dropped unwritten; abort() removes what exists
                raise StorageError(f"cannot write {self.path}: no space left on device")
            s, self.s = self.s, None
            s.end_step()
            s.close()


class H5Sink(Sink):
    def __init__(self, path: str):
        h5py = require("h5py", "HDF5 export (OUT.h5)")
        super().__init__(path)
        self.f = h5py.File(path, "w")

    def write(self, name, a, gshape, offset):
        ds = self.f.get(name)
        if ds is None:
            ds = self.f.create_dataset(name, shape=tuple(gshape), dtype=a.dtype)
        ds[tuple(slice(o, o + n) for o, n in zip(offset, a.shape))] = a

    def attr(self, name, value):
        self.f.attrs[name] = value

    def close(self):
        if self.f is not None:
            f, self.f = self.f, None
            f.close()


class NpzSink(Sink):
    def __init__(self, path: str):
        super().__init__(path)
        self.arrays: dict[str, np.ndarray] = {}
        self.attrs: dict = {}

    def write(self, name, a, gshape, offset):
        out = self.arrays.get(name)
        if out is None:
            out = self.arrays[name] = np.empty(tuple(gshape), a.dtype)
        out[tuple(slice(o, o + n) for o, n in zip(offset, a.shape))] = a

    def attr(self, name, value):
        self.attrs[name] = value.tolist() if isinstance(value, np.ndarray) else value

    def close(self):
        if self.arrays is not None:
            arrays, self.arrays = self.arrays, None
            arrays["__attrs__"] = np.array(json.dumps(self.attrs, default=repr))
            with open(self.path, "wb") as f:
                np.savez(f, **arrays)


SINKS = {".bp": BP5Sink, ".bp5": BP5Sink, ".h5": H5Sink, ".hdf5": H5Sink, ".npz": NpzSink}


def sink_type(path: str) -> type[Sink]:
    """The writer class for ``path``'s extension; an unknown one is refused (a
    silent BP5 directory named ``x.txt`` would surprise everyone)."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in SINKS:
        raise ArgumentError(f"cannot export to {path!r}: unknown extension {ext or '(none)'!r} "
                            f"(use {', '.join(sorted(SINKS))})")
    return SINKS[ext]


def sink_for(path: str) -> Sink:
    return sink_type(path)(path)
