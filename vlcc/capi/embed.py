"""The Python side of libvlcc: implementations of the _vlcc_py_* functions that the
exported C functions (bindings/libvlcc.c) forward to, plus the process-wide state
(the Checkpointer of vlcc_init and the registered C buffers, kept alive here).

Runs inside the C/Fortran program's process on the MPI library that program
initialized: mpi4py is told never to initialize or finalize MPI.
"""

from __future__ import annotations

import traceback

import numpy as np

from . import codes as C
from .codes import CapiError

ffi = lib = None          # set by bind()
_state: dict = {"ck": None, "buffers": {}, "owned": True}


def current():
    """The Checkpointer created by vlcc_init in this process (or attached), or None."""
    return _state["ck"]


def attach(ck) -> None:
    """Make libvlcc use an existing Python Checkpointer (a Python driver that loads a
    C/Fortran solver library): the solver's vlcc_register calls then add providers to
    ``ck`` and one ``ck.checkpoint()`` captures both sides. vlcc_init then returns
    VLCC_OK without creating another one; vlcc_finalize leaves ``ck`` open."""
    if _state["ck"] is not None and _state["ck"] is not ck:
        raise CapiError(C.ESTATE, "libvlcc already has a checkpointer (vlcc_init was called)")
    _state["ck"] = ck
    _state["owned"] = False


def detach() -> None:
    _state["ck"] = None
    _state["buffers"] = {}
    _state["owned"] = True


def _str(p, what: str, null_ok: bool = False):
    if p == ffi.NULL:
        if null_ok:
            return None
        raise CapiError(C.EINVAL, f"{what} is NULL")
    return ffi.string(p).decode("utf-8", "replace")


def _ck():
    ck = _state["ck"]
    if ck is None:
        raise CapiError(C.ESTATE, "vlcc is not initialized: call vlcc_init first "
                                  "(or it was finalized)")
    return ck


def _copy_id(vid: str, out, n: int) -> int:
    if out == ffi.NULL:
        return C.OK
    raw = vid.encode()
    if n <= 0:
        raise CapiError(C.ETRUNC, f"version id buffer of {n} bytes is too small for {vid!r}")
    k = min(len(raw), n - 1)
    ffi.memmove(out, raw[:k], k)
    out[k] = b"\0"
    if k < len(raw):
        raise CapiError(C.ETRUNC, f"version id {vid!r} needs {len(raw) + 1} bytes, buffer has {n}")
    return C.OK


def _guard(fn):
    """Run fn; on exception store the message (+ traceback for internal errors) and return
    its code. Also clears the last error on success? No: last error stays until the next
    failure (like errno), it is only meaningful after a failing call."""
    def wrapper(*args):
        try:
            rc = fn(*args)
            return C.OK if rc is None else rc
        except BaseException as exc:  # noqa: BLE001 - nothing may escape into C
            code = C.code_of(exc)
            msg = f"{C.NAMES.get(code, code)}: {type(exc).__name__}: {exc}"
            if code == C.EINTERNAL:
                msg += "\n" + traceback.format_exc()
            lib._vlcc_set_error(msg.encode("utf-8", "replace"))
            return code
    wrapper.__name__ = fn.__name__
    return wrapper


def _parse_options(s):
    opts = {}
    for k, v in C.split_options(s):
        if k == "branch":
            opts["branch"] = v
        elif k == "chunk_size":
            try:
                opts["chunk_size"] = int(v)
            except ValueError:
                raise CapiError(C.EINVAL, f"option chunk_size={v!r} is not an integer") from None
        elif k == "mode":
            if v not in ("sync", "async"):
                raise CapiError(C.EINVAL, f"option mode={v!r}: use sync or async")
            opts["mode"] = v
        elif k == "local_dir":
            opts["local_dir"] = v          # "none" disables the node-local tier
        elif k == "memory_budget":
            from ..engine.config import parse_bytes
            try:
                parse_bytes(v, "memory_budget")
            except Exception as exc:
                raise CapiError(C.EINVAL, f"option {exc}") from None
            opts["memory_budget"] = v
        elif k == "create":
            opts["create"] = v not in ("0", "false", "no")
        elif k in ("redundancy", "group_size", "persist"):   # the node-local tier's protection
            opts[k] = v
        else:
            raise CapiError(C.EINVAL, f"unknown option {k!r} (known: branch, chunk_size, mode, "
                                      f"local_dir, memory_budget, create, redundancy, group_size, "
                                      f"persist)")
    return opts


def init(path_p, fcomm, options_p):
    if _state["ck"] is not None:
        if not _state["owned"]:
            return C.OK      # a Python driver attached its checkpointer
        raise CapiError(C.ESTATE, f"vlcc_init called twice (already open on {_state['ck'].path}); "
                                  f"call vlcc_finalize first")
    path = _str(path_p, "repo_path")
    opts = _parse_options(_str(options_p, "options", null_ok=True))
    from .._mpi import load
    MPI = load()                 # MPIUnavailableError (install routes) if no MPI can be loaded
    if not MPI.Is_initialized() or MPI.Is_finalized():
        raise CapiError(C.ESTATE, "MPI is not initialized: call MPI_Init before vlcc_init")
    comm = MPI.Comm.f2py(int(fcomm))
    if comm == MPI.COMM_NULL:
        raise CapiError(C.EINVAL, "communicator is MPI_COMM_NULL")
    from ..checkpointer import Checkpointer
    _state["ck"] = Checkpointer(path, comm=comm, **opts)
    _state["owned"] = True
    _state["buffers"] = {}


def _ints(p, n, what, null_ok=False):
    if p == ffi.NULL:
        if null_ok:
            return None
        raise CapiError(C.EINVAL, f"{what} is NULL")
    return tuple(int(p[i]) for i in range(n))


def register(name_p, data, dtype, ndim, shape_p, gshape_p, off_p, halo, flags):
    ck = _ck()
    name = _str(name_p, "name")
    if data == ffi.NULL:
        raise CapiError(C.EINVAL, f"provider {name!r}: data is NULL")
    if dtype not in C.DTYPES:
        raise CapiError(C.EINVAL, f"provider {name!r}: unknown vlcc_dtype {dtype}")
    if not 0 <= ndim <= 32:
        raise CapiError(C.EINVAL, f"provider {name!r}: ndim {ndim} is not in 0..32")
    if flags not in (C.ORDER_C, C.ORDER_F):
        raise CapiError(C.EINVAL, f"provider {name!r}: unknown flags {flags}")
    if halo < 0:
        raise CapiError(C.EINVAL, f"provider {name!r}: negative halo {halo}")
    shape = _ints(shape_p, ndim, f"provider {name!r}: local_shape", null_ok=(ndim == 0)) or ()
    if any(n < 0 for n in shape):
        raise CapiError(C.EINVAL, f"provider {name!r}: negative extent in local_shape {shape}")
    gshape = _ints(gshape_p, ndim, "global_shape", null_ok=True)
    off = _ints(off_p, ndim, "offset", null_ok=True)
    dt = np.dtype(C.DTYPES[dtype])
    nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    # Zero-copy view of the caller's memory: capture reads it, restore writes into it.
    buf = ffi.buffer(ffi.cast("char *", data), nbytes) if nbytes else bytearray(0)
    arr = np.frombuffer(buf, dtype=dt).reshape(shape, order="F" if flags == C.ORDER_F else "C")
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
    _state["buffers"][name] = arr


def unregister(name_p):
    ck = _ck()
    name = _str(name_p, "name")
    ck.unregister(name)
    _state["buffers"].pop(name, None)


def checkpoint(step, msg_p, out, n):
    ck = _ck()
    msg = _str(msg_p, "message", null_ok=True) or ""
    v = ck.checkpoint(step=int(step), message=msg)
    return _copy_id(v.id, out, n)


def _spec(p):
    s = _str(p, "version", null_ok=True)
    return None if s in (None, "", "latest") else s


def restore(version_p):
    _ck().restore(_spec(version_p))


def query(version_p, out, n, step_p):
    ck = _ck()
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
    if step_p != ffi.NULL:
        step_p[0] = -1 if step is None else int(step)
    return _copy_id(vid, out, n)


def branch(name_p, at_p):
    _ck().branch(_str(name_p, "name"), at=_str(at_p, "at", null_ok=True))


def switch(name_p, create):
    _ck().switch(_str(name_p, "name"), create=bool(create))


def tag(name_p, version_p):
    _ck().tag(_str(name_p, "name"), _str(version_p, "version", null_ok=True))


def wait():
    _ck().wait()


def finalize():
    ck = _ck()
    if _state["owned"]:
        ck.close()
    else:
        for name in list(_state["buffers"]):
            try:
                ck.unregister(name)
            except Exception:
                pass
    detach()


_IMPL = {"init": init, "register": register, "unregister": unregister,
         "checkpoint": checkpoint, "restore": restore, "query": query, "branch": branch,
         "switch": switch, "tag": tag, "wait": wait, "finalize": finalize}


def bind(ffi_, lib_) -> None:
    """Attach the implementations to the embedded library (called by its init code)."""
    global ffi, lib
    ffi, lib = ffi_, lib_
    import mpi4py
    import sys
    if "mpi4py.MPI" not in sys.modules:
        # The host program owns MPI: never initialize or finalize it from here.
        mpi4py.rc.initialize = False
        mpi4py.rc.finalize = False
    for name, fn in _IMPL.items():
        ffi.def_extern(name=f"_vlcc_py_{name}", error=C.EINTERNAL)(_guard(fn))
    from . import veloc
    try:
        veloc.bind(ffi, lib)
    except ffi.error:
        pass    # a libvlcc built before the VeloC API existed: vlcc_* still work
    from . import adjoint
    try:
        adjoint.bind(ffi, lib)
    except ffi.error:
        pass    # a libvlcc built before the adjoint API existed
