"""Build tooling of libvlcc: ``libvlcc.py`` builds the library (cffi embedding),
the Fortran module and vlcc.pc; ``config.py`` is ``vlcc-config``; ``toolchain.py``
finds the one MPI's compilers and launcher. ``vlcc.capi.build`` re-exports the
build functions."""

from .libvlcc import (DEFAULT_OUT, build, ensure_built, find_tool, inputs, is_stale,  # noqa: F401
                      main, mpi_flags, sources)
