"""The adjoint C API (vlcc_adjoint_begin / vlcc_adjoint_next) from C and Fortran: the
examples/adjoint heat adjoint in C at 1, 2 and 3 ranks (RAM and RAM + disk schedules),
bit-exact against the program's own store-all gradient; the Fortran module's procedures
and error codes. Programs are built with the real compilers and run under mpiexec."""

from __future__ import annotations

import re

import pytest

import vlcc
from capi_helpers import ROOT, build_c, build_fortran, fmpirun, mpirun

cs = pytest.importorskip("checkpoint_schedules")


@pytest.fixture(scope="module")
def heat_adjoint(tmp_path_factory):
    d = tmp_path_factory.mktemp("heat_adjoint")
    return build_c(ROOT / "examples" / "adjoint" / "heat_adjoint.c", d / "heat_adjoint")


def parse(out: str) -> dict:
    line = next(ln for ln in out.splitlines() if ln.startswith("heat_adjoint:"))
    return {k: v for k, v in re.findall(r"(\w+) (\S+)", line.split(":", 1)[1])}


def assert_clean(repo):
    r = vlcc.Repository(repo)
    assert r.log() == [] and r.branches() == {}


@pytest.mark.parametrize("nranks", [1, 2, 3])
def test_c_heat_adjoint_revolve_bitexact_any_rank_count(heat_adjoint, tmp_path, nranks):
    steps, ram = 40, 4
    p = mpirun(nranks, heat_adjoint, tmp_path / "r", "--n", 60, "--steps", steps, "--ram", ram)
    res = parse(p.stdout)
    assert res["bitexact"] == "1" and res["ranks"] == str(nranks)
    assert int(res["forward_steps"]) == cs.optimal_steps_binomial(steps, ram) - steps + 1
    assert int(res["reverse_steps"]) == steps
    assert_clean(tmp_path / "r")


@pytest.mark.parametrize("schedule,ram,disk", [("multistage", 2, 3), ("twolevel", 2, 4)])
def test_c_heat_adjoint_with_disk_snapshots(heat_adjoint, tmp_path, schedule, ram, disk):
    steps = 24
    p = mpirun(2, heat_adjoint, tmp_path / "r", "--n", 40, "--steps", steps, "--ram", ram,
               "--disk", disk, "--schedule", schedule)
    res = parse(p.stdout)
    assert res["bitexact"] == "1"
    if schedule == "multistage":
        assert int(res["forward_steps"]) == cs.optimal_steps_binomial(steps, ram + disk) - steps + 1
    assert_clean(tmp_path / "r")


def test_c_bad_n_steps_is_einval(heat_adjoint, tmp_path):
    p = mpirun(1, heat_adjoint, tmp_path / "r", "--steps", 0, check=False)
    assert p.returncode != 0
    assert "vlcc_adjoint_begin" in p.stderr and "VLCC_EINVAL" in p.stderr
    assert "n_steps" in p.stderr


ADJ_F90 = r"""
program adj_f
  use, intrinsic :: iso_fortran_env, only: real64
  use mpi
  use vlcc
  implicit none
  integer, parameter :: nl = 5, nsteps = 20
  real(real64), target :: u(nl)
  real(real64) :: lam(nl), lref(nl), hist(nl, nsteps)
  integer :: ierr, rank, nprocs, k, action, n0, n1, nfwd, nrev, expect, ok, allok
  logical :: final_set
  call MPI_Init(ierr)
  call MPI_Comm_rank(MPI_COMM_WORLD, rank, ierr)
  call MPI_Comm_size(MPI_COMM_WORLD, nprocs, ierr)
  call init(u)
  do k = 0, nsteps - 1
    hist(:, k + 1) = u
    call step(u, k)
  end do
  lref = u
  do k = nsteps - 1, 0, -1
    lref = lref * (1.0_real64 + 0.1_real64 * cos(hist(:, k + 1)))
  end do

  call vlcc_init("repo", MPI_COMM_WORLD, ierr)
  call vlcc_register("adj/u", u, [nl * nprocs], [rank * nl], 0, ierr)
  call vlcc_adjoint_next(action, n0, n1, ierr)
  if (rank == 0) print '(a,i0)', "next_before_begin ", ierr
  call vlcc_adjoint_begin("revolve", 0, "ram=3", ierr)
  if (rank == 0) print '(a,i0)', "begin_zero_steps ", ierr
  call vlcc_adjoint_begin("revolve", nsteps, "ram=0", ierr)
  if (rank == 0) print '(a,i0)', "begin_zero_ram ", ierr

  call init(u)
  lam = 0
  nfwd = 0; nrev = 0; expect = nsteps - 1; ok = 1; final_set = .false.
  call vlcc_adjoint_begin("revolve", nsteps, "ram=3")
  do
    call vlcc_adjoint_next(action, n0, n1)
    if (action == VLCC_ADJ_DONE) exit
    if (action == VLCC_ADJ_FORWARD) then
      do k = n0, n1 - 1
        call step(u, k)
      end do
      nfwd = nfwd + (n1 - n0)
      if (n1 == nsteps .and. .not. final_set) then
        lam = u
        final_set = .true.
      end if
    else if (action == VLCC_ADJ_REVERSE) then
      if (n0 /= expect) ok = 0
      expect = expect - 1
      lam = lam * (1.0_real64 + 0.1_real64 * cos(u))
      nrev = nrev + 1
    end if
  end do
  if (any(lam /= lref) .or. nrev /= nsteps .or. .not. final_set) ok = 0
  call MPI_Allreduce(ok, allok, 1, MPI_INTEGER, MPI_MIN, MPI_COMM_WORLD, ierr)
  if (rank == 0) print '(a,i0,a,i0,a,i0,a,i0)', "adj_f: ranks ", nprocs, " forward_steps ", &
      nfwd, " reverse_steps ", nrev, " bitexact ", allok
  call vlcc_finalize()
  call MPI_Finalize(ierr)
contains
  subroutine init(a)
    real(real64), intent(out) :: a(nl)
    integer :: i
    do i = 1, nl
      a(i) = 0.1_real64 * i + rank
    end do
  end subroutine init
  subroutine step(a, n)
    real(real64), intent(inout) :: a(nl)
    integer, intent(in) :: n
    a = a + 0.1_real64 * sin(a) + 0.001_real64 * n
  end subroutine step
end program adj_f
"""


@pytest.mark.parametrize("nranks", [1, 2])
def test_fortran_adjoint_module_procedures(tmp_path, nranks):
    src = tmp_path / "adj_f.f90"
    src.write_text(ADJ_F90)
    exe = build_fortran(src, tmp_path / "adj_f")
    p = fmpirun(nranks, exe, cwd=tmp_path)
    out = p.stdout
    assert "next_before_begin -2" in out          # VLCC_ESTATE
    assert "begin_zero_steps -3" in out           # VLCC_EINVAL
    assert "begin_zero_ram -3" in out
    assert (f"adj_f: ranks {nranks} forward_steps "
            f"{cs.optimal_steps_binomial(20, 3) - 19} reverse_steps 20 bitexact 1") in out
    assert_clean(tmp_path / "repo")
