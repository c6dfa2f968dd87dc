"""Helpers of the C/Fortran ABI tests: build libvlcc and programs with the real compilers,
run them under the real mpiexec with a minimal environment (no venv on PATH, no
PYTHONPATH/LD_LIBRARY_PATH: linked programs must find everything through rpaths)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

from vlcc.capi import build as capi_build
from vlcc.capi.build.config import flags

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MPIEXEC = str(BIN / "mpiexec") if (BIN / "mpiexec").exists() else "mpiexec"


def ensure_lib() -> Path:
    return capi_build.ensure_built()


def clean_env(**extra) -> dict:
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), "LC_ALL": "C"}
    env.update(extra)
    return env


def run(cmd, timeout=300, env=None, cwd=None, check=True) -> subprocess.CompletedProcess:
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout,
                       env=env if env is not None else clean_env(), cwd=cwd)
    if check and p.returncode != 0:
        raise AssertionError(f"{shlex.join(map(str, cmd))} exited {p.returncode}\n"
                             f"--- stdout\n{p.stdout[-4000:]}\n--- stderr\n{p.stderr[-4000:]}")
    return p


def mpirun(n: int, prog, *args, **kw) -> subprocess.CompletedProcess:
    return run([MPIEXEC, "-n", str(n), prog, *args], **kw)


def build_c(src, exe: Path, extra=()) -> Path:
    ensure_lib()
    mpicc = capi_build.find_tool("mpicc")
    run([mpicc, "-O2", "-Wall", *flags("cflags").split(), str(src), *extra, "-o", str(exe),
         *flags("libs").split()], env=None)
    return exe


def fortran_compiler() -> str:
    """The toolchain's mpifort (``vlcc-config --fc``); the test is skipped, with the reason,
    only where no MPI with Fortran bindings could be installed (make setup installs Debian's
    libmpich-dev as root)."""
    import pytest
    from vlcc.capi.build import toolchain
    fc = toolchain.fc()
    if fc is None:
        pytest.skip("no mpifort: install an MPI with Fortran bindings (make setup does, as root)")
    return fc


def build_fortran(src, exe: Path) -> Path:
    """A conventional MPI Fortran program (`use mpi` / `use mpi_f08` + `use vlcc`), built as a
    user would: $(vlcc-config --fc) prog.f90 $(vlcc-config --fflags --flibs)."""
    ensure_lib()
    fc = fortran_compiler()
    run([fc, "-O2", str(src), "-o", str(exe), *flags("fflags").split(), *flags("flibs").split()],
        env=None, cwd=exe.parent)
    return exe


def fmpirun(n: int, prog, *args, **kw) -> subprocess.CompletedProcess:
    """Run under the toolchain's launcher ($(vlcc-config --mpiexec))."""
    from vlcc.capi.build import toolchain
    return run([toolchain.mpiexec(), "-n", str(n), prog, *args], **kw)
