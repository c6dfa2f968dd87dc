"""Binds vlcc's Python side to libvlcc when the library starts Python (the
embedded init code of capi/build/libvlcc.py calls :func:`bind`): the handles
go to capi/_ffi.py, and each API module's functions (``IMPL``) become the
library's ``_vlcc_py_*`` / ``_veloc_py_*`` entries. The one module that knows
all three APIs."""

from __future__ import annotations

import sys

from . import _ffi, adjoint, core, veloc

# (entry prefix, implementations, required): a library built before the VeloC or
# adjoint API existed lacks their entries; the vlcc_* functions still work there.
APIS = (("_vlcc_py_", core.IMPL, True),
        ("_veloc_py_", veloc.IMPL, False),
        ("_vlcc_py_", adjoint.IMPL, False))


def bind(ffi, lib) -> None:
    _ffi.set_handles(ffi, lib)
    import mpi4py
    if "mpi4py.MPI" not in sys.modules:
        # The host program owns MPI: never initialize or finalize it from here.
        mpi4py.rc.initialize = False
        mpi4py.rc.finalize = False
    for prefix, impl, required in APIS:
        try:
            _ffi.export(prefix, impl)
        except ffi.error:
            if required:
                raise
