"""libvlcc from conventional Fortran MPI programs (`use mpi` / `use mpi_f08` + `use vlcc`,
built with $(vlcc-config --fc) and run under $(vlcc-config --mpiexec)): heat.f90 / heat_f08.f90
killed and restarted on another rank count bit-exact, the Fortran-order contract against heat.c
and Python, error codes, and one MPI library in the process for Fortran, C and Python."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import vlcc
from capi_helpers import ROOT, build_c, build_fortran, fmpirun, fortran_compiler, mpirun
from vlcc.capi.build import toolchain

NY, NX, STEPS, EVERY = 40, 24, 60, 10
HEAT = ROOT / "examples" / "heat"


def final(repo) -> np.ndarray:
    r = vlcc.Repository(repo)
    v = r.log()[0]
    assert v.step == STEPS
    return r.read(v, "heat/u")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> np.ndarray:
    """heat.c (the unchanged C example, the wheel's mpicc and mpiexec) run uninterrupted: the
    Fortran programs store (nx, ny), C stores (ny, nx); returned transposed to Fortran's."""
    d = tmp_path_factory.mktemp("heat_c")
    heat_c = build_c(HEAT / "heat.c", d / "heat_c")
    mpirun(2, heat_c, d / "c", "--ny", NY, "--nx", NX, "--steps", STEPS, "--every", EVERY)
    return final(d / "c").T


@pytest.mark.parametrize("src,n_first,n_restart", [("heat.f90", 2, 3), ("heat_f08.f90", 3, 2)])
def test_heat_fortran_crash_restart_bitexact_and_matches_c(tmp_path, reference, src, n_first,
                                                           n_restart):
    exe = build_fortran(HEAT / src, tmp_path / Path(src).stem)
    args = [NY, NX, STEPS, EVERY]
    crashed = fmpirun(n_first, exe, tmp_path / "cr", *args, 35, check=False)
    assert crashed.returncode != 0
    assert [v.step for v in vlcc.Repository(tmp_path / "cr").log()] == [30, 20, 10]
    p = fmpirun(n_restart, exe, tmp_path / "cr", *args)
    assert "at step 30" in p.stdout
    restarted = final(tmp_path / "cr")
    assert restarted.shape == (NX, NY), "Fortran dimension order: global_shape (nx, ny)"
    # Bit-exact against an uninterrupted run of the same physics (heat.c's field, transposed:
    # element for element the same IEEE operations, whatever the language and rank count).
    assert np.array_equal(reference.view(np.uint64), restarted.view(np.uint64))


ERRORS_F90 = r"""
program errs
  use, intrinsic :: iso_c_binding
  use, intrinsic :: iso_fortran_env, only: int64, real64, real32
  use mpi
  use vlcc
  implicit none
  real(real64), target :: a(3, 4)
  real(real32), target :: f(3, 4)
  integer, target :: k(5)
  integer :: ierr, r, n, i, j
  character(len=64) :: vid
  call MPI_Init(ierr)
  call MPI_Comm_rank(MPI_COMM_WORLD, r, ierr)
  call MPI_Comm_size(MPI_COMM_WORLD, n, ierr)
  call vlcc_register("a", a, [3, 4 * n], [0, 4 * r], 0, ierr);  call show("register_before_init", ierr)
  call vlcc_init("repo", MPI_COMM_WORLD, ierr)
  call show("init", ierr)
  if (r == 0) call show_mpi_libraries()
  call vlcc_register("a", a, [3, 4 * n], [0, 4 * r], 0, ierr);  call show("register", ierr)
  call vlcc_register("a", a, [3, 4 * n], [0, 4 * r], 0, ierr);  call show("register_duplicate", ierr)
  k = [(i, i = 1, 5)]
  call vlcc_register_local("k", k, ierr);                         call show("register_local", ierr)
  do j = 1, 4
    do i = 1, 3
      a(i, j) = 1000 * r + 10 * i + j
    end do
  end do
  call vlcc_checkpoint(7, "from fortran", ierr, vid);             call show("checkpoint", ierr)
  a = -1; k = 0
  call vlcc_restore("no-such-version", ierr);                     call show("restore_unknown", ierr)
  call vlcc_restore("latest", ierr);                              call show("restore", ierr)
  if (r == 0) print '(a,l1)', "values|", all(k == [(i, i = 1, 5)]) .and. a(2, 3) == 23.0d0
  call vlcc_unregister("a", ierr);                                call show("unregister", ierr)
  call vlcc_register("a", f, [3, 4 * n], [0, 4 * r], 0, ierr);  call show("register_f32", ierr)
  call vlcc_restore("latest", ierr);                              call show("restore_dtype_mismatch", ierr)
  call vlcc_tag("t1", trim(vid), ierr);                           call show("tag", ierr)
  call vlcc_finalize(ierr);                                       call show("finalize", ierr)
  call MPI_Finalize(ierr)
contains
  subroutine show_mpi_libraries()   ! every MPI library file mapped into this process
    character(len=1024) :: line
    integer :: u, ios, k
    open (newunit=u, file="/proc/self/maps", action="read", iostat=ios)
    do while (ios == 0)
      read (u, '(a)', iostat=ios) line
      if (ios /= 0) exit
      k = index(line, "/")
      if (k > 0 .and. index(line, "/libmpi") > 0) print '(a)', "maps|" // trim(line(k:)) // "|"
    end do
    close (u)
  end subroutine
  subroutine show(what, code)
    character(len=*), intent(in) :: what
    integer, intent(in) :: code
    if (r == 0) then
      if (code == VLCC_OK) then
        print '(a)', what // "|" // vlcc_strerror(code) // "|"
      else
        print '(a)', what // "|" // vlcc_strerror(code) // "|" // vlcc_last_error()
      end if
    end if
  end subroutine
end program errs
"""


def test_fortran_error_codes_layout_and_one_mpi(tmp_path):
    src = tmp_path / "errs.f90"
    repo = tmp_path / "repo"
    src.write_text(ERRORS_F90)   # the program opens "repo" in its working directory
    exe = build_fortran(src, tmp_path / "errs")
    for n in (2, 3):
        if repo.exists():
            shutil.rmtree(repo)
        p = fmpirun(n, exe, cwd=tmp_path)
        lines = p.stdout.splitlines()
        # One MPI per process: after vlcc_init (whose embedded mpi4py found MPI initialized),
        # the only MPI C library mapped is the one mpifort linked (plus its Fortran layer).
        c_libs = {l.split("|")[1] for l in lines if l.startswith("maps|") and "fort" not in l}
        assert len(c_libs) == 1, c_libs
        rows = {l.split("|", 2)[0]: l.split("|", 2)[1:] for l in lines
                if "|" in l and not l.startswith("maps|")}
        codes = {k: v[0] for k, v in rows.items() if k != "values"}
        assert codes == {
            "register_before_init": "VLCC_ESTATE", "init": "VLCC_OK", "register": "VLCC_OK",
            "register_duplicate": "VLCC_EPROVIDER", "register_local": "VLCC_OK",
            "checkpoint": "VLCC_OK", "restore_unknown": "VLCC_ENOTFOUND", "restore": "VLCC_OK",
            "unregister": "VLCC_OK", "register_f32": "VLCC_OK",
            "restore_dtype_mismatch": "VLCC_EMISMATCH", "tag": "VLCC_OK", "finalize": "VLCC_OK"}
        assert rows["values"] == ["T"]
        assert "no-such-version" in rows["restore_unknown"][1]
        # Fortran order: global shape (3, 4n), g[i-1, 4r + j-1] == a(i, j) of rank r.
        g = vlcc.Repository(repo).read("tag:t1", "a")
        assert g.shape == (3, 4 * n)
        for rk in range(n):
            for i in range(1, 4):
                for j in range(1, 5):
                    assert g[i - 1, 4 * rk + j - 1] == 1000 * rk + 10 * i + j


def test_vlcc_config_prints_one_mpis_toolchain():
    """--cc, --fc and --mpiexec name one MPI: both wrappers link the same C library, the
    launcher sits beside them, and that library answers to libmpi.so.12 (the alias made by
    make setup when its distribution names it otherwise) so mpi4py's wheel binds to it."""
    fortran_compiler()                                   # skips (with the reason) without mpifort
    out = subprocess.run([sys.executable, "-m", "vlcc.capi.build.config", "--cc", "--fc", "--mpiexec"],
                         capture_output=True, text=True, timeout=120, check=True).stdout.split()
    cc, fc, mpiexec = out
    assert (cc, fc, mpiexec) == (toolchain.cc(), toolchain.fc(), toolchain.mpiexec())
    lib = toolchain.mpi_library(cc)
    assert lib is not None and lib == toolchain.mpi_library(fc)
    assert Path(mpiexec).parent == Path(fc).parent == Path(cc).parent
    assert toolchain.alias_needed(cc) is None, "make setup (setup-mpi-toolchain) did not run"
    alias = lib.parent / "libmpi.so.12"
    assert lib.name.startswith("libmpi.so.12") or alias.resolve() == lib.resolve()
