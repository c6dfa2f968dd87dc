"""vlcc's C ABI (libvlcc, include/vlcc.h, include/veloc.h) seen from Python.

Bottom up (docs/capi.md):

* ``codes``: error codes and dtypes (mirror of include/vlcc.h).
* ``_ffi``: the library's cffi handles and the C ↔ Python argument conversions.
* ``process``: the process-wide state — the Checkpointer the C/Fortran program
  uses. A Python driver that loads a C/Fortran solver library linked to libvlcc
  shares its Checkpointer with ``vlcc.capi.attach(ck)``, or gets the one the
  library's ``vlcc_init`` created with ``vlcc.capi.current()``.
* ``options``: the one parser of option strings and VeloC's configuration file.
* the three APIs, each importing only the modules above: ``core`` (``vlcc_*``),
  ``veloc`` (``VELOC_*``), ``adjoint`` (``vlcc_adjoint_*``).
* ``binding``: binds the three to the library when it starts Python.
* ``build/``: the build tooling — ``libvlcc.py`` (cffi embedding + Fortran module,
  vlcc.pc), ``config.py`` (the ``vlcc-config`` command), ``toolchain.py`` (the one MPI).
"""

from .codes import NAMES as ERROR_NAMES  # noqa: F401
from .process import attach, current, detach  # noqa: F401


def lib_dir():
    """Directory holding libvlcc.so (built by ``vlcc-config --build``)."""
    from .build import DEFAULT_OUT
    return DEFAULT_OUT / "lib"
