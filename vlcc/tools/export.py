"""``vlcc export PATH[@SPEC] OUT.bp``: one version as a plain ADIOS2 BP5 file,
readable with ``adios2.FileReader`` or ``bpls`` without vlcc.

* a distributed array provider -> one global variable of its global shape,
  written slab by slab (never the whole array in memory);
* a per-rank array -> one variable of its shape when all ranks stored the same
  bytes, else a global variable of shape ``(nranks, *shape)`` (rank leads),
  else (shapes differ per rank) one variable ``NAME/rank<k>`` per rank;
* a value -> an attribute ``NAME`` (numbers, strings, numeric lists and arrays
  as themselves; anything else as JSON, or its repr); per-rank values that
  differ -> ``NAME/rank<k>``;
* a derived provider -> an attribute ``NAME`` holding its recipe as JSON;
* the version itself -> attributes under ``vlcc/`` (id, parent, branch, step,
  time, nranks, message, attrs as JSON).

``OUT.h5`` writes the same layout to HDF5 (h5py), ``OUT.npz`` to numpy's npz
(in memory; attributes as JSON in ``__attrs__``): see tools/sinks.py."""

from __future__ import annotations

import json
import os
import shutil
from typing import Sequence

import numpy as np

from ..errors import StorageError, VlccError
from . import progress
from .diff import SLAB_BYTES, select, slabs
from .sinks import sink_type
from .spec import label, open_target


def export(target: "str | tuple", out: str, *, providers: Sequence[str] | None = None,
           force: bool = False, progress_bar: bool = False, slab_bytes: int = SLAB_BYTES,
           allow_pickle: bool = False) -> dict:
    """Write version ``target`` (``PATH[@SPEC]``) to the file ``out``.
    ``allow_pickle``: unpickle values stored as pickles (trusted repositories only).
    The format follows the extension (``.bp``: ADIOS2 BP5, ``.h5``: HDF5,
    ``.npz``: numpy; tools/sinks.py). Returns what was written: version,
    path, format, variables, attributes, bytes."""
    out = os.fspath(out)
    kind = sink_type(out)            # an unknown extension fails before anything is read
    repo, v = open_target(target)
    names = select(sorted(v.providers), providers, label(repo, v))
    if os.path.exists(out):
        if not force:
            raise StorageError(f"{out} exists; pass --force (force=True) to overwrite it")
        shutil.rmtree(out) if os.path.isdir(out) else os.remove(out)
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise StorageError(f"cannot write {out}: directory {parent} does not exist")
    variables: list[str] = []
    attributes: list[str] = []
    nbytes = 0
    total = sum(b["nbytes"] for n in names for b in repo.blocks(v, n))
    _check_space(parent, total, out)
    sink = kind(out)
    try:
        for key, val in _version_attrs(v).items():
            sink.attr(f"vlcc/{key}", val)
            attributes.append(f"vlcc/{key}")
        with progress.bar(f"export {v.id}", total, enabled=progress_bar) as advance:
            for name in names:
                e = v.providers[name]
                if e["kind"] == "distributed":
                    gshape = tuple(e["global_shape"])
                    item = np.dtype(e["dtype"]).itemsize
                    for off, shp in slabs(gshape, item, slab_bytes):
                        a = repo.read(v, name, box=(off, shp))
                        sink.write(name, a, gshape, off)
                        nbytes += a.nbytes
                        advance(a.nbytes)
                    variables.append(name)
                elif e["kind"] == "array":
                    for vname, a, g, off in _per_rank_arrays(repo, v, name, e):
                        sink.write(vname, a, g, off)
                        nbytes += a.nbytes
                        advance(a.nbytes)
                        if vname not in variables:
                            variables.append(vname)
                elif e["kind"] == "value":
                    vals = [repo.read(v, name, rank=k, allow_pickle=allow_pickle) for k in
                            range(1 if e.get("replicated") else v.nranks)]
                    pairs = [(name, vals[0])] if len(vals) == 1 else \
                        [(f"{name}/rank{k}", x) for k, x in enumerate(vals)]
                    for aname, x in pairs:
                        sink.attr(aname, _attr_value(x))
                        attributes.append(aname)
                    advance(sum(b["nbytes"] for b in repo.blocks(v, name)))
                else:   # derived: no bytes, the recipe
                    sink.attr(name, json.dumps({"derived": e.get("recipe"), "inputs": e.get("inputs")}))
                    attributes.append(name)
        sink.close()
    except VlccError:
        sink.abort()
        raise
    except Exception as exc:
        sink.abort()
        raise StorageError(f"writing {out}: {exc}") from exc
    return {"version": v.id, "source": label(repo, v), "path": out, "format": type(sink).__name__[:-4],
            "variables": variables, "attributes": attributes, "bytes": nbytes}


def _check_space(parent: str, total: int, out: str) -> None:
    """ADIOS2 aborts the process (SIGABRT) when the disk fills while it
    writes: refuse up front when the export cannot fit (its logical bytes
    plus 1% and 1 MiB of metadata)."""
    try:
        st = os.statvfs(parent)
    except OSError:
        return
    free, need = st.f_bavail * st.f_frsize, total + total // 100 + (1 << 20)
    if need > free:
        raise StorageError(f"cannot write {out}: no space left on device (needs about {need} "
                           f"bytes, {free} free in {parent})")


def _version_attrs(v) -> dict:
    return {"version": v.id, "parent": v.parent or "", "branch": v.branch,
            "step": -1 if v.step is None else int(v.step), "time": float(v.time),
            "nranks": int(v.nranks), "message": v.message or "",
            "attrs": json.dumps(v.attrs, sort_keys=True, default=repr)}


def _per_rank_arrays(repo, v, name: str, e: dict):
    """(variable name, array, global shape, offset) for a per-rank array."""
    blocks = repo.blocks(v, name)
    if e.get("replicated") or len(blocks) == 1:
        a = repo.read(v, name, rank=0)
        yield name, a, list(a.shape), [0] * a.ndim
        return
    shapes = {tuple(b["shape"]) for b in blocks}
    if len(shapes) == 1:
        shape = list(shapes.pop())
        for k in range(len(blocks)):
            a = repo.read(v, name, rank=k)[np.newaxis]
            yield name, a, [len(blocks)] + shape, [k] + [0] * len(shape)
        return
    for k in range(len(blocks)):
        a = repo.read(v, name, rank=k)
        yield f"{name}/rank{k}", a, list(a.shape), [0] * a.ndim


def _attr_value(x):
    """A value ADIOS2 can hold as an attribute (numbers, strings, numeric arrays)."""
    if isinstance(x, (bool, np.bool_)):
        return int(x)
    if isinstance(x, (int, float, np.integer, np.floating)):
        return x.item() if isinstance(x, np.generic) else x
    if isinstance(x, str):
        return x
    if isinstance(x, np.ndarray) and x.dtype.kind in "iuf" and x.size:
        return np.ascontiguousarray(x.reshape(-1))
    if isinstance(x, (list, tuple)) and x and all(isinstance(i, (int, float)) and
                                                    not isinstance(i, bool) for i in x):
        return np.asarray(x)
    try:
        return json.dumps(x)
    except (TypeError, ValueError):
        return repr(x)
