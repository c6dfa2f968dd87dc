"""``vlcc-config``: flags to compile and link against libvlcc.

    vlcc-config --cflags --libs      C:       $(vlcc-config --cc) prog.c $(vlcc-config --cflags --libs)
    vlcc-config --fflags --flibs     Fortran: $(vlcc-config --fc) prog.f90 $(vlcc-config --fflags --flibs)
    vlcc-config --cc | --fc | --mpiexec   the MPI compiler wrappers and launcher to use (one MPI,
                                     vlcc/capi/build/toolchain.py; VLCC_CC, VLCC_FC, VLCC_MPIEXEC override)
    vlcc-config --mpilibs            link flags of the MPI library vlcc's Python uses (for gfortran)
    vlcc-config --libdir | --includedir | --fmoddir | --pkgconfigdir | --mpicc | --version
    vlcc-config --build              (re)build libvlcc, the Fortran module and vlcc.pc

Every link flag carries an rpath, so linked programs run without LD_LIBRARY_PATH.
"""

from __future__ import annotations

import argparse
import sys

from .libvlcc import DEFAULT_OUT, find_tool, is_stale


def flags(what: str, out=DEFAULT_OUT) -> str:
    lib, inc, mod = out / "lib", out / "include", out / "fortran"
    return {
        "cflags": f"-I{inc}",
        "libs": f"-L{lib} -Wl,-rpath,{lib} -lvlcc",
        "fflags": f"-I{mod}",
        "flibs": f"-L{lib} -Wl,-rpath,{lib} -lvlccf -lvlcc",
        "libdir": str(lib), "includedir": str(inc), "fmoddir": str(mod),
        "pkgconfigdir": str(out / "pkgconfig"),
    }[what]


def mpilibs() -> str:
    from .libvlcc import mpi_flags
    f = mpi_flags()
    return " ".join([f"-L{d}" for d in f["library_dirs"]] + [f"-Wl,-rpath,{d}" for d in f["rpath"]]
                    + [f"-l{l}" for l in f["libraries"]])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="vlcc-config", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    for k in ("cflags", "libs", "fflags", "flibs", "libdir", "includedir", "fmoddir",
              "pkgconfigdir"):
        ap.add_argument(f"--{k}", action="append_const", const=k, dest="what")
    ap.add_argument("--mpicc", action="store_true", help="the mpicc of the MPI vlcc's Python uses")
    for k, h in (("cc", "the C MPI compiler wrapper for programs"),
                 ("fc", "the Fortran MPI compiler wrapper (use mpi / use mpi_f08)"),
                 ("mpiexec", "the launcher of that MPI")):
        ap.add_argument(f"--{k}", action="append_const", const=k, dest="tools", help=h)
    ap.add_argument("--mpilibs", action="store_true", help="link flags of that MPI (for gfortran)")
    ap.add_argument("--version", action="store_true")
    ap.add_argument("--build", action="store_true", help="(re)build libvlcc now")
    a = ap.parse_args(argv)
    if a.build:
        from .libvlcc import build
        build()
    if a.version:
        from ..._version import __version__
        print(__version__)
    if a.mpicc:
        print(find_tool("mpicc"))
    if a.mpilibs:
        print(mpilibs())
    if a.tools:
        from . import toolchain
        get = {"cc": toolchain.cc, "fc": toolchain.require_fc, "mpiexec": toolchain.mpiexec}
        try:
            print(" ".join(get[t]() for t in a.tools))
        except toolchain.ToolchainError as exc:
            print(f"vlcc-config: {exc}", file=sys.stderr)
            return 1
    if a.what:
        if is_stale(DEFAULT_OUT, fortran=any(w in ("fflags", "flibs", "fmoddir") for w in a.what)):
            print(f"vlcc-config: libvlcc is not built or out of date in {DEFAULT_OUT}; "
                  f"run 'vlcc-config --build'", file=sys.stderr)
            return 1
        print(" ".join(flags(w) for w in a.what))
    elif not (a.build or a.version or a.mpicc or a.mpilibs or a.tools):
        ap.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
