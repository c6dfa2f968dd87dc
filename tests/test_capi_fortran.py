"""libvlcc from Fortran (module vlcc, gfortran): heat.f90 crash + restart on another rank
count bit-exact, the Fortran-order contract against heat.c and Python, error codes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import vlcc
from capi_helpers import ROOT, build_c, build_fortran, mpirun

NY, NX, STEPS, EVERY = 40, 24, 60, 10
HEAT = ROOT / "examples" / "heat"


@pytest.fixture(scope="module")
def heat_f(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("heat_f")
    return build_fortran(HEAT / "heat.f90", d / "heat_f", c_shims=[HEAT / "heat_mpi.c"])


def final(repo) -> np.ndarray:
    r = vlcc.Repository(repo)
    v = r.log()[0]
    assert v.step == STEPS
    return r.read(v, "heat/u")


@pytest.mark.parametrize("n_first,n_restart", [(2, 3), (3, 2)])
def test_heat_f90_crash_restart_bitexact_and_matches_c(heat_f, tmp_path, n_first, n_restart):
    args = [NY, NX, STEPS, EVERY]
    mpirun(2, heat_f, tmp_path / "full", *args)
    crashed = mpirun(n_first, heat_f, tmp_path / "cr", *args, 35, check=False)
    assert crashed.returncode != 0
    assert [v.step for v in vlcc.Repository(tmp_path / "cr").log()] == [30, 20, 10]
    p = mpirun(n_restart, heat_f, tmp_path / "cr", *args)
    assert "at step 30" in p.stdout
    full, restarted = final(tmp_path / "full"), final(tmp_path / "cr")
    assert full.shape == (NX, NY), "Fortran dimension order: global_shape (nx, ny)"
    assert np.array_equal(full.view(np.uint64), restarted.view(np.uint64))
    # Same physics in C: C stores (ny, nx); the Fortran array is its transpose, element for element.
    heat_c = build_c(HEAT / "heat.c", tmp_path / "heat_c")
    mpirun(n_restart, heat_c, tmp_path / "c", "--ny", NY, "--nx", NX, "--steps", STEPS, "--every", EVERY)
    assert np.array_equal(final(tmp_path / "c").T, full)


ERRORS_F90 = r"""
program errs
  use, intrinsic :: iso_c_binding
  use, intrinsic :: iso_fortran_env, only: int64, real64, real32
  use vlcc
  implicit none
  interface
    subroutine hm_init() bind(C)
    end subroutine
    subroutine hm_finalize() bind(C)
    end subroutine
    integer(c_int) function hm_comm_world() bind(C)
      import :: c_int
    end function
    integer(c_int) function hm_rank() bind(C)
      import :: c_int
    end function
    integer(c_int) function hm_size() bind(C)
      import :: c_int
    end function
  end interface
  real(real64), target :: a(3, 4)
  real(real32), target :: f(3, 4)
  integer, target :: k(5)
  integer :: ierr, r, n, i, j
  character(len=64) :: vid
  call hm_init()
  r = hm_rank(); n = hm_size()
  call vlcc_register("a", a, [3, 4 * n], [0, 4 * r], 0, ierr);  call show("register_before_init", ierr)
  call vlcc_init("repo", hm_comm_world(), ierr)
  call show("init", ierr)
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
  call hm_finalize()
contains
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


def test_fortran_error_codes_and_layout(tmp_path):
    src = tmp_path / "errs.f90"
    repo = tmp_path / "repo"
    src.write_text(ERRORS_F90)   # the program opens "repo" in its working directory
    exe = build_fortran(src, tmp_path / "errs", c_shims=[HEAT / "heat_mpi.c"])
    for n in (2, 3):
        if repo.exists():
            import shutil
            shutil.rmtree(repo)
        p = mpirun(n, exe, cwd=tmp_path)
        rows = {l.split("|", 2)[0]: l.split("|", 2)[1:] for l in p.stdout.splitlines() if "|" in l}
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
