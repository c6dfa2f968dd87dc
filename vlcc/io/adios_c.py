"""ADIOS2's C API through cffi (ABI mode), for the calls that move bytes.

Why not the ``adios2`` Python bindings for these: they hold the GIL while
ADIOS2 writes or reads, so a background flush would freeze the application
thread (measured: a 256 MiB BP5 write in a thread let the main thread run
~1,800 short loop iterations in 0.7 s, against ~48,000 beside a plain file
write). cffi releases the GIL around every C call. The library is the
``libadios2_c`` shipped in the same adios2 package, so the on-disk result is
the same BP5."""

from __future__ import annotations

import glob
import os
import threading

import cffi

_CDEF = """
typedef struct adios2_adios adios2_adios;
typedef struct adios2_io adios2_io;
typedef struct adios2_variable adios2_variable;
typedef struct adios2_engine adios2_engine;
typedef int adios2_error;
adios2_adios *adios2_init_serial(void);
adios2_io *adios2_declare_io(adios2_adios *adios, const char *name);
int adios2_remove_io(int *result, adios2_adios *adios, const char *name);
int adios2_set_engine(adios2_io *io, const char *engine_type);
int adios2_set_parameter(adios2_io *io, const char *key, const char *value);
int adios2_add_transport(size_t *transport_index, adios2_io *io, const char *type);
int adios2_set_transport_parameter(adios2_io *io, const size_t transport_index,
                                   const char *key, const char *value);
adios2_variable *adios2_define_variable(adios2_io *io, const char *name, const int type,
                                        const size_t ndims, const size_t *shape,
                                        const size_t *start, const size_t *count,
                                        const int constant_dims);
adios2_variable *adios2_inquire_variable(adios2_io *io, const char *name);
int adios2_set_selection(adios2_variable *variable, const size_t ndims,
                         const size_t *start, const size_t *count);
int adios2_variable_shape(size_t *shape, const adios2_variable *variable);
adios2_engine *adios2_open(adios2_io *io, const char *name, const int mode);
int adios2_put(adios2_engine *engine, adios2_variable *variable, const void *data, const int launch);
int adios2_get(adios2_engine *engine, adios2_variable *variable, void *data, const int launch);
int adios2_perform_gets(adios2_engine *engine);
int adios2_close(adios2_engine *engine);
"""

TYPE_UINT8 = 9
MODE_WRITE, MODE_READ_RANDOM, MODE_DEFERRED, MODE_SYNC = 1, 6, 4, 5
CONSTANT_DIMS = 1

ffi = cffi.FFI()
ffi.cdef(_CDEF)
_LIB = None
_LOCK = threading.Lock()
_TLS = threading.local()


def lib():
    """The loaded libadios2_c (raises ImportError when the package lacks it)."""
    global _LIB
    with _LOCK:
        if _LIB is None:
            # Locate the package without importing it: `import adios2` also imports
            # torch when that is installed (~14 s per process, measured here).
            import importlib.util
            spec = importlib.util.find_spec("adios2")
            if spec is None or not spec.submodule_search_locations:
                raise ImportError("the adios2 package is not installed")
            pkg = list(spec.submodule_search_locations)[0]
            cands = sorted(glob.glob(os.path.join(pkg, "libadios2_c.so*")) +
                           glob.glob(os.path.join(pkg, "..", "adios2.libs", "libadios2_c*.so*")),
                           key=len)
            if not cands:
                raise ImportError(f"libadios2_c not found next to {pkg}")
            _LIB = ffi.dlopen(cands[0])
        return _LIB


def adios():
    """One ADIOS2 factory per thread (ADIOS2 objects are not thread-safe)."""
    a = getattr(_TLS, "adios", None)
    if a is None:
        if not os.environ.get("HOME"):   # ADIOS2 crashes (SIGSEGV) without HOME, e.g. under env -i
            import pwd
            os.environ["HOME"] = pwd.getpwuid(os.getuid()).pw_dir or "/tmp"
        a = lib().adios2_init_serial()
        if a == ffi.NULL:
            raise RuntimeError("adios2_init_serial failed")
        _TLS.adios = a
    return a


def warm() -> None:
    """Load ADIOS2, create this thread's factory and parse the C types the
    readers and writers use (cffi parses a type string on its first use:
    ~20 ms of the first flush otherwise)."""
    adios()
    L = lib()
    for name in dir(L):             # cffi binds each function on first access
        getattr(L, name)
    for t in ("size_t[]", "size_t *", "size_t[1]", "int *"):
        ffi.typeof(t)
    ffi.from_buffer(bytearray(1))


def sizes(*values: int):
    return ffi.new("size_t[]", [int(v) for v in values])
