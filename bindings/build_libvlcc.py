#!/usr/bin/env python
"""Build libvlcc (cffi embedding), the Fortran module and vlcc.pc into vlcc/_lib/.

    python bindings/build_libvlcc.py [--if-stale] [--no-fortran] [--outdir DIR]

Use the interpreter vlcc is installed in (the venv's python): the library starts
that interpreter's Python and finds its packages without environment variables.
"""
import sys

from vlcc.capi.build import main

if __name__ == "__main__":
    sys.exit(main())
