"""vlcc's C ABI (libvlcc, include/vlcc.h) seen from Python.

* ``vlcc.capi.build``: builds libvlcc with cffi's embedding mode (+ Fortran module, vlcc.pc).
* ``vlcc.capi.config``: the ``vlcc-config`` command (compile/link flags).
* ``vlcc.capi.embed``: the Python side the exported C functions call; also used by a
  Python driver that loads a C/Fortran solver library linked to libvlcc:
  ``vlcc.capi.attach(ck)`` shares the driver's Checkpointer with the library, or
  ``vlcc.capi.current()`` returns the one the library's ``vlcc_init`` created.
* ``vlcc.capi.codes``: error codes and dtypes (mirror of include/vlcc.h).
"""

from .codes import NAMES as ERROR_NAMES  # noqa: F401


def current():
    """The Checkpointer libvlcc uses in this process (created by vlcc_init or attached), or None."""
    from .embed import current as _c
    return _c()


def attach(ck) -> None:
    """Let libvlcc (loaded in this process) register C/Fortran buffers into ``ck``."""
    from .embed import attach as _a
    _a(ck)


def detach() -> None:
    from .embed import detach as _d
    _d()


def lib_dir():
    """Directory holding libvlcc.so (built by ``vlcc-config --build``)."""
    from .build import DEFAULT_OUT
    return DEFAULT_OUT / "lib"
