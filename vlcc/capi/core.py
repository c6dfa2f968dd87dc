"""The Python side of libvlcc's own API (include/vlcc.h, bindings/libvlcc.c): the
``vlcc_*`` functions forward to the functions here (``_vlcc_py_<name>``).

Runs inside the C/Fortran program's process on the MPI library that program
initialized (capi/binding.py tells mpi4py never to initialize or finalize MPI).
"""

from __future__ import annotations

import numpy as np

from . import _ffi, options, process
from . import codes as C
from .codes import CapiError

# The Python functions libvlcc calls (cffi embedding_api). Changing these needs a rebuild.
DECLS = """
int _vlcc_py_boot(void);
int _vlcc_py_init(const char *path, long long fcomm, const char *options);
int _vlcc_py_register(const char *name, void *data, int dtype, int ndim,
                      const int64_t *local_shape, const int64_t *global_shape,
                      const int64_t *offset, int halo, int flags);
int _vlcc_py_unregister(const char *name);
int _vlcc_py_checkpoint(int64_t step, const char *message, char *version_id, size_t id_len);
int _vlcc_py_restore(const char *version);
int _vlcc_py_query(const char *version, char *version_id, size_t id_len, int64_t *step);
int _vlcc_py_branch(const char *name, const char *at);
int _vlcc_py_switch(const char *name, int create);
int _vlcc_py_tag(const char *name, const char *version);
int _vlcc_py_wait(void);
int _vlcc_py_finalize(void);
"""


def init(path_p, fcomm, options_p):
    ck = process.current()
    if ck is not None:
        if not process.owned():
            return C.OK      # a Python driver attached its checkpointer
        raise CapiError(C.ESTATE, f"vlcc_init called twice (already open on {ck.path}); "
                                  f"call vlcc_finalize first")
    path = _ffi.string(path_p, "repo_path")
    opts = options.INIT.parse_string(_ffi.string(options_p, "options", null_ok=True))
    comm = process.mpi_comm(fcomm, "vlcc_init")
    from ..checkpointer import Checkpointer
    process.opened(Checkpointer(path, comm=comm, **opts))


def register(name_p, data, dtype, ndim, shape_p, gshape_p, off_p, halo, flags):
    ck = process.require()
    name = _ffi.string(name_p, "name")
    _ffi.check_buffer(f"provider {name!r}", data, "data", dtype, ndim, 0, halo)
    if flags not in (C.ORDER_C, C.ORDER_F):
        raise CapiError(C.EINVAL, f"provider {name!r}: unknown flags {flags}")
    shape = _ffi.ints(shape_p, ndim, f"provider {name!r}: local_shape", null_ok=(ndim == 0)) or ()
    if any(n < 0 for n in shape):
        raise CapiError(C.EINVAL, f"provider {name!r}: negative extent in local_shape {shape}")
    gshape = _ffi.ints(gshape_p, ndim, "global_shape", null_ok=True)
    off = _ffi.ints(off_p, ndim, "offset", null_ok=True)
    dt = np.dtype(C.DTYPES[dtype])
    nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    arr = _ffi.view(data, nbytes, dt, shape, "F" if flags == C.ORDER_F else "C")
    kw = {}
    if gshape is not None:
        kw = dict(global_shape=gshape, offset=off if off is not None else (0,) * ndim, halo=halo)
    elif off is not None:
        raise CapiError(C.EINVAL, f"provider {name!r}: offset given without global_shape")
    elif halo:
        kw = dict(halo=halo)
    from ..errors import ProviderError
    try:
        ck.register(name, arr, **kw)
    except ProviderError as exc:
        if "already registered" in str(exc) or "clashes" in str(exc):
            raise
        raise CapiError(C.EINVAL, str(exc)) from None
    process.keep(name, arr)


def unregister(name_p):
    ck = process.require()
    name = _ffi.string(name_p, "name")
    ck.unregister(name)
    process.forget(name)


def checkpoint(step, msg_p, out, n):
    ck = process.require()
    msg = _ffi.string(msg_p, "message", null_ok=True) or ""
    v = ck.checkpoint(step=int(step), message=msg)
    return _ffi.copy_id(v.id, out, n)


def _spec(p):
    s = _ffi.string(p, "version", null_ok=True)
    return None if s in (None, "", "latest") else s


def restore(version_p):
    process.require().restore(_spec(version_p))


def query(version_p, out, n, step_p):
    ck = process.require()
    spec = _spec(version_p)
    from ..comm.protocol import root_only
    from ..repository import Repository

    def look():
        if spec is None:
            vid = ck.repository.branch_head(ck.branch_name)
            if vid is None:
                from ..errors import NotFoundError
                raise NotFoundError(f"branch {ck.branch_name!r} of {ck.path} has no version yet")
            spec_ = vid
        else:
            spec_ = spec
        v = Repository(ck.path).resolve(spec_)
        return v.id, v.step
    vid, step = root_only(ck.comm, look)
    if not _ffi.is_null(step_p):
        step_p[0] = -1 if step is None else int(step)
    return _ffi.copy_id(vid, out, n)


def branch(name_p, at_p):
    process.require().branch(_ffi.string(name_p, "name"),
                             at=_ffi.string(at_p, "at", null_ok=True))


def switch(name_p, create):
    process.require().switch(_ffi.string(name_p, "name"), create=bool(create))


def tag(name_p, version_p):
    process.require().tag(_ffi.string(name_p, "name"),
                          _ffi.string(version_p, "version", null_ok=True))


def wait():
    process.require().wait()


def finalize():
    ck = process.require()
    if process.owned():
        ck.close()
    else:
        for name in process.kept():
            try:
                ck.unregister(name)
            except Exception:
                pass
    process.detach()


IMPL = {"init": init, "register": register, "unregister": unregister,
        "checkpoint": checkpoint, "restore": restore, "query": query, "branch": branch,
        "switch": switch, "tag": tag, "wait": wait, "finalize": finalize}
