! heat.f90 with the Fortran 2008 MPI bindings (`use mpi_f08`): communicators are
! type(MPI_Comm); vlcc takes the integer handle MPI_COMM_WORLD%MPI_VAL.
!
!   $(vlcc-config --fc) heat_f08.f90 -o heat_f08 $(vlcc-config --fflags --flibs)
!   $(vlcc-config --mpiexec) -n 2 ./heat_f08 REPO NY NX STEPS EVERY [CRASH_AT]
!
! Same physics, arguments and stored field as heat.f90 (and the transpose of heat.c's).
program heat_f08
  use, intrinsic :: iso_c_binding, only: c_int
  use, intrinsic :: iso_fortran_env, only: int64, real64
  use mpi_f08
  use vlcc
  implicit none
  interface    ! libc, to die like a killed job (no MPI_Finalize, no flush)
    integer(c_int) function c_getpid() bind(C, name="getpid")
      import :: c_int
    end function
    integer(c_int) function c_kill(pid, sig) bind(C, name="kill")
      import :: c_int
      integer(c_int), value :: pid, sig
    end function
  end interface

  real(real64), allocatable, target :: u(:,:), v(:,:)
  integer(int64), target :: step(1)
  integer(int64) :: ny, nx, steps, every, crash_at, nyl, y0, gy, found_step
  integer :: rank, nranks, up, down, ierr, i, j, nargs, n
  character(len=256) :: arg, repo
  character(len=VLCC_ID_MAX) :: vid
  real(real64) :: dx, dy, c
  real(real64), parameter :: a = 0.2d0

  call MPI_Init(ierr)
  call MPI_Comm_rank(MPI_COMM_WORLD, rank, ierr)
  call MPI_Comm_size(MPI_COMM_WORLD, nranks, ierr)
  nargs = command_argument_count()
  call get_command_argument(1, repo)
  call get_command_argument(2, arg); read (arg, *) ny
  call get_command_argument(3, arg); read (arg, *) nx
  call get_command_argument(4, arg); read (arg, *) steps
  call get_command_argument(5, arg); read (arg, *) every
  crash_at = -1
  if (nargs >= 6) then
    call get_command_argument(6, arg); read (arg, *) crash_at
  end if

  nyl = ny / nranks
  if (rank < mod(ny, int(nranks, int64))) nyl = nyl + 1
  y0 = rank * (ny / nranks) + min(int(rank, int64), mod(ny, int(nranks, int64)))
  allocate(u(0:nx+1, 0:nyl+1), v(0:nx+1, 0:nyl+1))
  u = 0; v = 0
  do j = 1, int(nyl)
    gy = y0 + j - 1
    do i = 1, int(nx)
      dy = real(gy, real64) / real(ny, real64) - 0.3d0
      dx = real(i - 1, real64) / real(nx, real64) - 0.6d0
      if (dx * dx + dy * dy < 0.04d0) then
        u(i, j) = 100.0d0
      else
        u(i, j) = real(mod(gy * 7 + (i - 1) * 3, 11_int64), real64)
      end if
    end do
  end do
  step = 0

  call vlcc_init(trim(repo), MPI_COMM_WORLD%MPI_VAL)  ! the integer handle; no ierr: stops on error
  call vlcc_register("heat/u", u, [nx, ny], [0_int64, y0], 1)
  call vlcc_register_local("heat/step", step)

  call vlcc_query("latest", ierr, vid, found_step)
  if (ierr == VLCC_OK) then
    call vlcc_restore(trim(vid))
    if (rank == 0) print '(a,a,a,i0,a,i0,a)', "heat_f: restarted from version ", trim(vid), &
        " at step ", step(1), " on ", nranks, " ranks"
  else if (ierr /= VLCC_ENOTFOUND) then
    print '(a)', "heat_f: " // vlcc_last_error()
    call MPI_Abort(MPI_COMM_WORLD, 2, ierr)
  end if

  up = merge(rank - 1, MPI_PROC_NULL, rank > 0)
  down = merge(rank + 1, MPI_PROC_NULL, rank < nranks - 1)
  n = int(nx) + 2
  do while (step(1) < steps)
    call MPI_Sendrecv(u(:, 1), n, MPI_DOUBLE_PRECISION, up, 0, u(:, nyl + 1), n, &
                      MPI_DOUBLE_PRECISION, down, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE, ierr)
    call MPI_Sendrecv(u(:, nyl), n, MPI_DOUBLE_PRECISION, down, 1, u(:, 0), n, &
                      MPI_DOUBLE_PRECISION, up, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE, ierr)
    if (up == MPI_PROC_NULL) u(:, 0) = 0
    if (down == MPI_PROC_NULL) u(:, nyl + 1) = 0
    do j = 1, int(nyl)
      do i = 1, int(nx)
        c = u(i, j)
        v(i, j) = c + a * ((((u(i, j - 1) + u(i, j + 1)) + u(i - 1, j)) + u(i + 1, j)) - 4.0d0 * c)
      end do
    end do
    u(1:nx, 1:nyl) = v(1:nx, 1:nyl)
    step(1) = step(1) + 1
    if (mod(step(1), every) == 0 .or. step(1) == steps) then
      write (arg, '(a,i0)') "heat.f90 step ", step(1)
      call vlcc_checkpoint(step(1), trim(arg), version_id=vid)
    end if
    if (step(1) == crash_at) ierr = c_kill(c_getpid(), 9_c_int)     ! SIGKILL
  end do
  if (rank == 0) print '(a,i0,a,a)', "heat_f: done at step ", step(1), ", last version ", trim(vid)
  call vlcc_finalize()
  call MPI_Finalize(ierr)
end program heat_f08
