"""The MPI toolchain that compiled programs use with vlcc: C and Fortran compiler wrappers and
the launcher, all of ONE MPI, and the ``libmpi.so.12`` name that lets mpi4py's wheel bind to it.

Why this shape (measured on Debian 12, docs/capi.md "MPI: one library per process"):

* The PyPI ``mpich`` wheel (vlcc's default MPI for Python) ships no Fortran bindings (no
  libmpifort, no mpi.mod). Debian's ``libmpich-dev`` (MPICH 4.0.2) brings mpicc, mpifort,
  ``mpi.mod`` and ``mpi_f08.mod`` for the system gfortran: 30 s of apt-get, against 18 min
  measured on the shared 2-core VM for building mpi4py from source against it (the route
  for a cluster's MPI).
* libvlcc links no MPI library itself (MPICH's ``MPI_Comm_c2f`` is a macro), and mpi4py's
  wheel first looks for an MPI already loaded in the process (``dlopen(NULL)``): inside a
  program built with mpifort it uses that program's MPI. Its extension module then needs the
  file name ``libmpi.so.12`` (upstream MPICH's name); Debian calls the same library
  ``libmpich.so.12``. One alias beside it (``libmpi.so.12`` → ``libmpich.so.12`` in Debian's
  library directory, a default search directory of the loader; made by ``make setup`` as
  root) lets the loader find the SAME file, so C, Fortran and Python share one MPI (not in
  /usr/local/lib: ldconfig caches by SONAME, so a link of another name there is never found).
  Programs built with the wheel's mpicc are untouched: their RUNPATH finds the wheel's
  library first, and a Python process loads the wheel's by full path.
* Both launchers (the wheel's hydra 5.0.2 and Debian's 4.0.2) start programs of either MPICH
  (PMI wire protocol); ``--mpiexec`` prints the one of the compilers' MPI.

Selection (environment variables override, for a cluster's MPI): ``VLCC_FC`` else an
``mpifort`` next to this interpreter (an MPI installed in the venv/conda env) else on PATH;
``VLCC_CC`` else the ``mpicc`` beside that mpifort (same MPI) else the interpreter's mpicc;
``VLCC_MPIEXEC`` else the ``mpiexec`` beside the compilers.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from ...errors import VlccError

ALIAS_NAME = "libmpi.so.12"     # the MPICH-ABI name mpi4py's wheel extension is linked to


class ToolchainError(VlccError):
    """No usable MPI compiler wrapper / launcher for compiled programs."""


def _bin_dir() -> Path:
    return Path(sys.executable).parent


def _beside_interpreter(name: str) -> str | None:
    p = _bin_dir() / name
    return str(p) if p.exists() else None


def fc() -> str | None:
    """The Fortran MPI compiler wrapper, or None when no MPI with Fortran bindings is present."""
    env = os.environ.get("VLCC_FC")
    if env:
        return env
    for name in ("mpifort", "mpif90"):
        found = _beside_interpreter(name) or shutil.which(name)
        if found:
            return str(Path(found).resolve())   # /usr/bin/mpifort -> mpifort.mpich (alternatives)
    return None


def _sibling(tool: str, want: str) -> str | None:
    """``want`` (mpicc, mpiexec) of the same MPI as ``tool``: same directory, same suffix
    (Debian: mpifort.mpich -> mpicc.mpich, mpiexec.mpich)."""
    p = Path(tool)
    m = re.match(r"^(mpifort|mpif90|mpicc)(.*)$", p.name)
    if not m:
        return None
    cand = p.with_name(want + m.group(2))
    return str(cand) if cand.exists() else None


def cc() -> str:
    """The C MPI compiler wrapper of the same MPI as :func:`fc` (else this interpreter's)."""
    env = os.environ.get("VLCC_CC")
    if env:
        return env
    f = fc()
    sib = _sibling(f, "mpicc") if f and not os.environ.get("VLCC_FC") else None
    if sib:
        return sib
    found = _beside_interpreter("mpicc") or shutil.which("mpicc")
    if not found:
        raise ToolchainError(f"no mpicc next to {sys.executable} nor on PATH: install an MPI "
                             f"(pip install mpich, or your system's MPI)")
    return found


def mpiexec() -> str:
    """The launcher of the compilers' MPI."""
    env = os.environ.get("VLCC_MPIEXEC")
    if env:
        return env
    for base in (fc(), cc()):
        sib = _sibling(base, "mpiexec") if base else None
        if sib:
            return sib
    found = _beside_interpreter("mpiexec") or shutil.which("mpiexec")
    if not found:
        raise ToolchainError(f"no mpiexec next to {sys.executable} nor on PATH")
    return found


def require_fc() -> str:
    f = fc()
    if f is None:
        raise ToolchainError(
            "no Fortran MPI compiler wrapper (mpifort) found: the PyPI mpich wheel has no Fortran "
            "bindings. Install your system's MPI development package (Debian/Ubuntu: apt-get "
            "install libmpich-dev; make setup does it as root) or load your cluster's MPI module, "
            "or set VLCC_FC")
    return f


def mpi_library(compiler: str) -> Path | None:
    """The shared MPI C library a compiler wrapper links (from ``-show``), or None."""
    try:
        out = subprocess.run([compiler, "-show"], capture_output=True, text=True, timeout=60,
                             check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    toks = shlex.split(out)
    dirs = [t[2:] for t in toks if t.startswith("-L")]
    libs = [t[2:] for t in toks if t.startswith("-l")]
    # The C library is the last -l of mpicc (-lmpich / -lmpi); mpifort adds -lmpichfort first.
    for name in reversed(libs):
        if "fort" in name or not name.startswith("mpi"):
            continue
        for d in dirs:
            p = Path(d) / f"lib{name}.so"
            if p.exists():
                return p.resolve()
    return None


def soname(lib: Path) -> str | None:
    out = subprocess.run(["readelf", "-d", str(lib)], capture_output=True, text=True,
                         timeout=60).stdout
    m = re.search(r"\(SONAME\)\s+Library soname: \[([^\]]+)\]", out)
    return m.group(1) if m else None


def alias_needed(compiler: str | None = None) -> tuple[Path, Path] | None:
    """(alias path, target) when the toolchain's MPICH-ABI library is not called libmpi.so.12
    (Debian's libmpich.so.12) and the alias does not point at it yet; None otherwise."""
    compiler = compiler or cc()
    lib = mpi_library(compiler)
    if lib is None:
        return None
    name = soname(lib) or lib.name
    if name == ALIAS_NAME or not name.endswith(".so.12"):
        return None          # upstream MPICH / Intel MPI name it libmpi.so.12; Open MPI is .so.40
    alias = lib.parent / ALIAS_NAME
    if alias.exists() and alias.resolve() == lib.resolve():
        return None
    return alias, lib


def install_alias() -> str:
    """Create the libmpi.so.12 alias (root) or say what to do; returns a message."""
    need = alias_needed()
    if need is None:
        return ""                       # nothing to do: stay quiet (make setup runs this)
    alias, lib = need
    if os.geteuid() != 0:
        return (f"note: not root, so {alias} -> {lib} was not made; programs built with "
                f"{cc()} / {fc()} then need LD_LIBRARY_PATH to a directory holding that link "
                f"(docs/capi.md)")
    # A system library folder is changed: say so before, and how to undo it (docs/capi.md).
    old = alias.is_symlink() or alias.exists()
    was = (f" (replacing {alias} -> {os.readlink(alias) if alias.is_symlink() else 'a file'})"
           if old else "")
    print(f"vlcc setup: writing to the system library folder {alias.parent}: symlink "
          f"{alias.name} -> {lib.name}{was}, so mpi4py binds to the MPI that programs built "
          f"with {cc()} link (docs/capi.md); undo: rm {alias}", flush=True)
    if old:
        alias.unlink()
    alias.symlink_to(lib.name)          # relative: the link stays valid if the tree moves
    return f"made {alias} -> {lib} (undo: rm {alias})"


def describe() -> dict:
    return {"cc": cc(), "fc": fc(), "mpiexec": mpiexec()}


def main(argv=None) -> int:
    import argparse
    ap = argparse.ArgumentParser(description="vlcc's MPI toolchain for compiled programs")
    ap.add_argument("--install-alias", action="store_true",
                    help="make the libmpi.so.12 alias of Debian's MPICH (root)")
    a = ap.parse_args(argv)
    if a.install_alias:
        msg = install_alias()
        if msg:
            print(msg)
    else:
        for k, v in describe().items():
            print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
