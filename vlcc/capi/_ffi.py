"""The bottom of vlcc.capi: the handles of the embedded library (cffi's ``ffi``
and ``lib``, set once when libvlcc starts Python) and the conversions every API
module needs between C arguments and Python values. Imports nothing of capi but
the codes."""

from __future__ import annotations

import traceback

import numpy as np

from . import codes as C
from .codes import CapiError

ffi = lib = None          # set by set_handles() (capi/binding.py) when libvlcc loads


def set_handles(ffi_, lib_) -> None:
    global ffi, lib
    ffi, lib = ffi_, lib_


def is_null(p) -> bool:
    return p == ffi.NULL


def string(p, what: str, null_ok: bool = False) -> str | None:
    """A C string argument as str (``what`` names it in the error when NULL)."""
    if p == ffi.NULL:
        if null_ok:
            return None
        raise CapiError(C.EINVAL, f"{what} is NULL")
    return ffi.string(p).decode("utf-8", "replace")


def ints(p, n: int, what: str, null_ok: bool = False) -> tuple[int, ...] | None:
    """``n`` integers of a C array argument."""
    if p == ffi.NULL:
        if null_ok:
            return None
        raise CapiError(C.EINVAL, f"{what} is NULL")
    return tuple(int(p[i]) for i in range(n))


def check_buffer(where: str, ptr, ptr_name: str, dtype: int, ndim: int, min_ndim: int,
                 halo: int) -> None:
    """The checks every C registration of a buffer makes (vlcc_register,
    VELOC_Mem_protect_dist): a CapiError(EINVAL) prefixed with ``where``."""
    if is_null(ptr):
        raise CapiError(C.EINVAL, f"{where}: {ptr_name} is NULL")
    if dtype not in C.DTYPES:
        raise CapiError(C.EINVAL, f"{where}: unknown vlcc_dtype {dtype}")
    if not min_ndim <= ndim <= 32:
        raise CapiError(C.EINVAL, f"{where}: ndim {ndim} is not in {min_ndim}..32")
    if halo < 0:
        raise CapiError(C.EINVAL, f"{where}: negative halo {halo}")


def address(p) -> int:
    return int(ffi.cast("uintptr_t", p))


def view(ptr, nbytes: int, dtype=np.uint8, shape=None, order: str = "C") -> np.ndarray:
    """A zero-copy numpy view of ``nbytes`` of the caller's memory at ``ptr`` (a
    pointer or an address): capture reads it, restore writes into it."""
    buf = ffi.buffer(ffi.cast("char *", ptr), nbytes) if nbytes else bytearray(0)
    arr = np.frombuffer(buf, dtype=dtype)
    return arr if shape is None else arr.reshape(shape, order=order)


def copy_id(vid: str, out, n: int) -> int:
    """Copy a version id into the caller's buffer ``out`` of ``n`` bytes (NUL-terminated)."""
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


def guard(fn):
    """Run fn; on exception store the message (+ traceback for internal errors) as
    the last error and return its code. The last error stays until the next
    failure (like errno): it is only meaningful after a failing call."""
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


def export(prefix: str, impl: dict) -> None:
    """Attach ``impl`` ({name: function}) to the library's ``<prefix><name>`` entries."""
    for name, fn in impl.items():
        ffi.def_extern(name=f"{prefix}{name}", error=C.EINTERNAL)(guard(fn))
