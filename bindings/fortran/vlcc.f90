! Fortran module `vlcc`: the C ABI of include/vlcc.h for Fortran (iso_c_binding).
!
!   gfortran $(vlcc-config --fflags) prog.f90 $(vlcc-config --flibs) <MPI link flags>
!
! Every procedure takes an optional last `ierr` (0 = VLCC_OK, else a negative VLCC_E*
! code, message in vlcc_last_error()); without `ierr`, a failure prints the message and
! stops the program with `error stop`.
!
! Arrays: vlcc_register(name, a, global_shape, offset, halo, ierr) takes real(4/8) and
! integer(4/8) arrays of rank 1-3 *as declared*, ghost layers included; `global_shape`
! and the 0-based `offset` of the first owned element are given in Fortran dimension
! order, as default integer or integer(int64) arrays. Element a(i1,..,in) (its 0-based
! global index) is stored at global index (i1,..,in): Python's Repository.read(v, name)
! returns an array g with g[i1,..,in] == a(i1,..,in), and a C program registering the same
! global array in C order sees it transposed (g has shape global_shape, not reversed).
! vlcc_register_local(name, a, ierr) registers a plain per-rank array.
! The array must be contiguous and stay allocated (declare it with `target`, or as an
! allocatable with `target`) until vlcc_unregister or vlcc_finalize: vlcc captures from
! and restores into its memory.
!
! Communicators are Fortran integer handles (MPI_COMM_WORLD of `use mpi`, or
! MPI_Comm_c2f of a C communicator).
module vlcc
  use, intrinsic :: iso_c_binding
  use, intrinsic :: iso_fortran_env, only: int32, int64, real32, real64, error_unit
  implicit none
  private

  integer, parameter, public :: VLCC_OK = 0, VLCC_EINIT = -1, VLCC_ESTATE = -2, &
      VLCC_EINVAL = -3, VLCC_ENOTFOUND = -4, VLCC_EMISMATCH = -5, VLCC_EPROVIDER = -6, &
      VLCC_ECORRUPT = -7, VLCC_ESTORAGE = -8, VLCC_EREPO = -9, VLCC_EEXISTS = -10, &
      VLCC_ECOLLECTIVE = -11, VLCC_ETRUNC = -12, VLCC_EUNSUPPORTED = -13, VLCC_EINTERNAL = -99
  integer(c_int), parameter :: VLCC_BYTE = 0, VLCC_FLOAT32 = 1, VLCC_FLOAT64 = 2, &
      VLCC_INT32 = 5, VLCC_INT64 = 6
  integer(c_int), parameter :: VLCC_ORDER_F = 1
  integer, parameter, public :: VLCC_ID_MAX = 64

  public :: vlcc_init, vlcc_register, vlcc_register_local, vlcc_unregister, vlcc_checkpoint, &
      vlcc_restore, vlcc_query, vlcc_branch, vlcc_switch, vlcc_tag, vlcc_wait, vlcc_finalize, &
      vlcc_last_error, vlcc_strerror

  interface
    integer(c_int) function c_init_f(path, fcomm, options) bind(C, name="vlcc_init_f")
      import :: c_int, c_char, c_ptr
      character(kind=c_char), dimension(*), intent(in) :: path
      integer(c_int), value :: fcomm
      type(c_ptr), value :: options
    end function
    integer(c_int) function c_register_ex(name, data, dtype, ndim, ls, gs, off, halo, flags) &
        bind(C, name="vlcc_register_ex")
      import :: c_int, c_char, c_ptr
      character(kind=c_char), dimension(*), intent(in) :: name
      type(c_ptr), value :: data, ls, gs, off
      integer(c_int), value :: dtype, ndim, halo, flags
    end function
    integer(c_int) function c_unregister(name) bind(C, name="vlcc_unregister")
      import :: c_int, c_char
      character(kind=c_char), dimension(*), intent(in) :: name
    end function
    integer(c_int) function c_checkpoint(step, message, id, n) bind(C, name="vlcc_checkpoint")
      import :: c_int, c_char, c_int64_t, c_size_t
      integer(c_int64_t), value :: step
      character(kind=c_char), dimension(*), intent(in) :: message
      character(kind=c_char), dimension(*), intent(out) :: id
      integer(c_size_t), value :: n
    end function
    integer(c_int) function c_restore(version) bind(C, name="vlcc_restore")
      import :: c_int, c_char
      character(kind=c_char), dimension(*), intent(in) :: version
    end function
    integer(c_int) function c_query(version, id, n, step) bind(C, name="vlcc_query")
      import :: c_int, c_char, c_size_t, c_int64_t
      character(kind=c_char), dimension(*), intent(in) :: version
      character(kind=c_char), dimension(*), intent(out) :: id
      integer(c_size_t), value :: n
      integer(c_int64_t), intent(out) :: step
    end function
    integer(c_int) function c_branch(name, at) bind(C, name="vlcc_branch")
      import :: c_int, c_char, c_ptr
      character(kind=c_char), dimension(*), intent(in) :: name
      type(c_ptr), value :: at
    end function
    integer(c_int) function c_switch(name, create) bind(C, name="vlcc_switch")
      import :: c_int, c_char
      character(kind=c_char), dimension(*), intent(in) :: name
      integer(c_int), value :: create
    end function
    integer(c_int) function c_tag(name, version) bind(C, name="vlcc_tag")
      import :: c_int, c_char, c_ptr
      character(kind=c_char), dimension(*), intent(in) :: name
      type(c_ptr), value :: version
    end function
    integer(c_int) function c_wait() bind(C, name="vlcc_wait")
      import :: c_int
    end function
    integer(c_int) function c_finalize() bind(C, name="vlcc_finalize")
      import :: c_int
    end function
    type(c_ptr) function c_last_error() bind(C, name="vlcc_last_error")
      import :: c_ptr
    end function
    type(c_ptr) function c_strerror(code) bind(C, name="vlcc_strerror")
      import :: c_ptr, c_int
      integer(c_int), value :: code
    end function
    integer(c_size_t) function c_strlen(s) bind(C, name="strlen")
      import :: c_size_t, c_ptr
      type(c_ptr), value :: s
    end function
  end interface

  interface vlcc_checkpoint
    module procedure checkpoint_i4, checkpoint_i8
  end interface vlcc_checkpoint

  interface vlcc_register
    module procedure reg_r4_1_s4, reg_r4_1_s8, reg_r4_2_s4, reg_r4_2_s8, &
      reg_r4_3_s4, reg_r4_3_s8, reg_r8_1_s4, reg_r8_1_s8, &
      reg_r8_2_s4, reg_r8_2_s8, reg_r8_3_s4, reg_r8_3_s8, &
      reg_i4_1_s4, reg_i4_1_s8, reg_i4_2_s4, reg_i4_2_s8, &
      reg_i4_3_s4, reg_i4_3_s8, reg_i8_1_s4, reg_i8_1_s8, &
      reg_i8_2_s4, reg_i8_2_s8, reg_i8_3_s4, reg_i8_3_s8
  end interface vlcc_register

  interface vlcc_register_local
    module procedure regl_r4_1, regl_r4_2, regl_r4_3, regl_r8_1, &
      regl_r8_2, regl_r8_3, regl_i4_1, regl_i4_2, &
      regl_i4_3, regl_i8_1, regl_i8_2, regl_i8_3
  end interface vlcc_register_local

contains

  subroutine reg_r4_1_s4(name, a, global_shape, offset, halo, ierr)
    character(len=*), intent(in) :: name
    real(real32), intent(inout), target :: a(:)
    integer(int32), intent(in) :: global_shape(1), offset(1)
    integer, intent(in) :: halo
    integer, intent(out), optional :: ierr
    integer(c_int64_t), target :: gs(1), off(1), ls(1)
    ls = int(shape(a), c_int64_t)
    gs = int(global_shape, c_int64_t)
    off = int(offset, c_int64_t)
    if (.not. is_contiguous(a)) then
      call finish(VLCC_EINVAL, ierr, name // ": array is not contiguous")
      return
    end if
    call finish(c_register_ex(cstr(name), c_loc(a), VLCC_FLOAT32, 1, c_loc(ls), &
                c_loc(gs), c_loc(off), int(halo, c_int), VLCC_ORDER_F), ierr, "vlcc_register")
  end subroutine reg_r4_1_s4
  subroutine reg_r4_1_s8(name, a, global_shape, offset, halo, ierr)
    character(len=*), intent(in) :: name
    real(real32), intent(inout), target :: a(:)
    integer(int64), intent(in) :: global_shape(1), offset(1)
    integer, intent(in) :: halo
    integer, intent(out), optional :: ierr
    integer(c_int64_t), target :: gs(1), off(1), ls(1)
    ls = int(shape(a), c_int64_t)
    gs = int(global_shape, c_int64_t)
    off = int(offset, c_int64_t)
    if (.not. is_contiguous(a)) then
      call finish(VLCC_EINVAL, ierr, name // ": array is not contiguous")
      return
    end if
    call finish(c_register_ex(cstr(name), c_loc(a), VLCC_FLOAT32, 1, c_loc(ls), &
                c_loc(gs), c_loc(off), int(halo, c_int), VLCC_ORDER_F), ierr, "vlcc_register")
  end subroutine reg_r4_1_s8
  subroutine regl_r4_1(name, a, ierr)
    character(len=*), intent(in) :: name
    real(real32), intent(inout), target :: a(:)
    integer, intent(out), optional :: ierr
    integer(c_int64_t), target :: ls(1)
    ls = int(shape(a), c_int64_t)
    if (.not. is_contiguous(a)) then
      call finish(VLCC_EINVAL, ierr, name // ": array is not contiguous")
      return
    end if
    call finish(c_register_ex(cstr(name), c_loc(a), VLCC_FLOAT32, 1, c_loc(ls), &
                c_null_ptr, c_null_ptr, 0_c_int, VLCC_ORDER_F), ierr, "vlcc_register_local")
  end subroutine regl_r4_1
  subroutine reg_r4_2_s4(name, a, global_shape, offset, halo, ierr)
    character(len=*), intent(in) :: name
    real(real32), intent(inout), target :: a(:,:)
    integer(int32), intent(in) :: global_shape(2), offset(2)
    integer, intent(in) :: halo
    integer, intent(out), optional :: ierr
    integer(c_int64_t), target :: gs(2), off(2), ls(2)
    ls = int(shape(a), c_int64_t)
    gs = int(global_shape, c_int64_t)
    off = int(offset, c_int64_t)
    if (.not. is_contiguous(a)) then
      call finish(VLCC_EINVAL, ierr, name // ": array is not contiguous")
      return
    end if
    call finish(c_register_ex(cstr(name), c_loc(a), VLCC_FLOAT32, 2, c_loc(ls), &
                c_loc(gs), c_loc(off), int(halo, c_int), VLCC_ORDER_F), ierr, "vlcc_register")
  end subroutine reg_r4_2_s4
  subroutine reg_r4_2_s8(name, a, global_shape, offset, halo, ierr)
    character(len=*), intent(in) :: name
    real(real32), intent(inout), target :: a(:,:)
    integer(int64), intent(in) :: global_shape(2), offset(2)
    integer, intent(in) :: halo
    integer, intent(out), optional :: ierr
    integer(c_int64_t), target :: gs(2), off(2), ls(2)
    ls = int(shape(a), c_int64_t)
    gs = int(global_shape, c_int64_t)
    off = int(offset, c_int64_t)
    if (.not. is_contiguous(a)) then
      call finish(VLCC_EINVAL, ierr, name // ": array is not contiguous")
      return
    end if
    call finish(c_register_ex(cstr(name), c_loc(a), VLCC_FLOAT32, 2, c_loc(ls), &
                c_loc(gs), c_loc(off), int(halo, c_int), VLCC_ORDER_F), ierr, "vlcc_register")
  end subroutine reg_r4_2_s8
  subroutine regl_r4_2(name, a, ierr)
    character(len=*), intent(in) :: name
    real(real32), intent(inout), target :: a(:,:)
    integer, intent(out), optional :: ierr
    integer(c_int64_t), target :: ls(2)
    ls = int(shape(a), c_int64_t)
    if (.not. is_contiguous(a)) then
      call finish(VLCC_EINVAL, ierr, name // ": array is not contiguous")
      return
    end if
    call finish(c_register_ex(cstr(name), c_loc(a), VLCC_FLOAT32, 2, c_loc(ls), &
                c_null_ptr, c_null_ptr, 0_c_int, VLCC_ORDER_F), ierr, "vlcc_register_local")
  end subroutine regl_r4_2
  subroutine reg_r4_3_s4(name, a, global_shape, offset, halo, ierr)
    character(len=*), intent(in) :: name
    real(real32), intent(inout), target :: a(:,:,:)
    integer(int32), intent(in) :: global_shape(3), offset(3)
    integer, intent(in) :: halo
    integer, intent(out), optional :: ierr
    integer(c_int64_t), target :: gs(3), off(3), ls(3)
    ls = int(shape(a), c_int64_t)
    gs = int(global_shape, c_int64_t)
    off = int(offset, c_int64_t)
    if (.not. is_contiguous(a)) then
      call finish(VLCC_EINVAL, ierr, name // ": array is not contiguous")
      return
    end if
    call finish(c_register_ex(cstr(name), c_loc(a), VLCC_FLOAT32, 3, c_loc(ls), &
                c_loc(gs), c_loc(off), int(halo, c_int), VLCC_ORDER_F), ierr, "vlcc_register")
  end subroutine reg_r4_3_s4
  subroutine reg_r4_3_s8(name, a, global_shape, offset, halo, ierr)
    character(len=*), intent(in) :: name
    real(real32), intent(inout), target :: a(:,:,:)
    integer(int64), intent(in) :: global_shape(3), offset(3)
    integer, intent(in) :: halo
    integer, intent(out), optional :: ierr
    integer(c_int64_t), target :: gs(3), off(3), ls(3)
    ls = int(shape(a), c_int64_t)
    gs = int(global_shape, c_int64_t)
    off = int(offset, c_int64_t)
    if (.not. is_contiguous(a)) then
      call finish(VLCC_EINVAL, ierr, name // ": array is not contiguous")
      return
    end if
    call finish(c_register_ex(cstr(name), c_loc(a), VLCC_FLOAT32, 3, c_loc(ls), &
                c_loc(gs), c_loc(off), int(halo, c_int), VLCC_ORDER_F), ierr, "vlcc_register")
  end subroutine reg_r4_3_s8
  subroutine regl_r4_3(name, a, ierr)
    character(len=*), intent(in) :: name
    real(real32), intent(inout), target :: a(:,:,:)
    integer, intent(out), optional :: ierr
    integer(c_int64_t), target :: ls(3)
    ls = int(shape(a), c_int64_t)
    if (.not. is_contiguous(a)) then
      call finish(VLCC_EINVAL, ierr, name // ": array is not contiguous")
      return
    end if
    call finish(c_register_ex(cstr(name), c_loc(a), VLCC_FLOAT32, 3, c_loc(ls), &
                c_null_ptr, c_null_ptr, 0_c_int, VLCC_ORDER_F), ierr, "vlcc_register_local")
  end subroutine regl_r4_3
  subroutine reg_r8_1_s4(name, a, global_shape, offset, halo, ierr)
    character(len=*), intent(in) :: name
    real(real64), intent(inout), target :: a(:)
    integer(int32), intent(in) :: global_shape(1), offset(1)
    integer, intent(in) :: halo
    integer, intent(out), optional :: ierr
    integer(c_int64_t), target :: gs(1), off(1), ls(1)
    ls = int(shape(a), c_int64_t)
    gs = int(global_shape, c_int64_t)
    off = int(offset, c_int64_t)
    if (.not. is_contiguous(a)) then
      call finish(VLCC_EINVAL, ierr, name // ": array is not contiguous")
      return
    end if
    call finish(c_register_ex(cstr(name), c_loc(a), VLCC_FLOAT64, 1, c_loc(ls), &
                c_loc(gs), c_loc(off), int(halo, c_int), VLCC_ORDER_F), ierr, "vlcc_register")
  end subroutine reg_r8_1_s4
  subroutine reg_r8_1_s8(name, a, global_shape, offset, halo, ierr)
    character(len=*), intent(in) :: name
    real(real64), intent(inout), target :: a(:)
    integer(int64), intent(in) :: global_shape(1), offset(1)
    integer, intent(in) :: halo
    integer, intent(out), optional :: ierr
    integer(c_int64_t), target :: gs(1), off(1), ls(1)
    ls = int(shape(a), c_int64_t)
    gs = int(global_shape, c_int64_t)
    off = int(offset, c_int64_t)
    if (.not. is_contiguous(a)) then
      call finish(VLCC_EINVAL, ierr, name // ": array is not contiguous")
      return
    end if
    call finish(c_register_ex(cstr(name), c_loc(a), VLCC_FLOAT64, 1, c_loc(ls), &
                c_loc(gs), c_loc(off), int(halo, c_int), VLCC_ORDER_F), ierr, "vlcc_register")
  end subroutine reg_r8_1_s8
  subroutine regl_r8_1(name, a, ierr)
    character(len=*), intent(in) :: name
    real(real64), intent(inout), target :: a(:)
    integer, intent(out), optional :: ierr
    integer(c_int64_t), target :: ls(1)
    ls = int(shape(a), c_int64_t)
    if (.not. is_contiguous(a)) then
      call finish(VLCC_EINVAL, ierr, name // ": array is not contiguous")
      return
    end if
    call finish(c_register_ex(cstr(name), c_loc(a), VLCC_FLOAT64, 1, c_loc(ls), &
                c_null_ptr, c_null_ptr, 0_c_int, VLCC_ORDER_F), ierr, "vlcc_register_local")
  end subroutine regl_r8_1
  subroutine reg_r8_2_s4(name, a, global_shape, offset, halo, ierr)
    character(len=*), intent(in) :: name
    real(real64), intent(inout), target :: a(:,:)
    integer(int32), intent(in) :: global_shape(2), offset(2)
    integer, intent(in) :: halo
    integer, intent(out), optional :: ierr
    integer(c_int64_t), target :: gs(2), off(2), ls(2)
    ls = int(shape(a), c_int64_t)
    gs = int(global_shape, c_int64_t)
    off = int(offset, c_int64_t)
    if (.not. is_contiguous(a)) then
      call finish(VLCC_EINVAL, ierr, name // ": array is not contiguous")
      return
    end if
    call finish(c_register_ex(cstr(name), c_loc(a), VLCC_FLOAT64, 2, c_loc(ls), &
                c_loc(gs), c_loc(off), int(halo, c_int), VLCC_ORDER_F), ierr, "vlcc_register")
  end subroutine reg_r8_2_s4
  subroutine reg_r8_2_s8(name, a, global_shape, offset, halo, ierr)
    character(len=*), intent(in) :: name
    real(real64), intent(inout), target :: a(:,:)
    integer(int64), intent(in) :: global_shape(2), offset(2)
    integer, intent(in) :: halo
    integer, intent(out), optional :: ierr
    integer(c_int64_t), target :: gs(2), off(2), ls(2)
    ls = int(shape(a), c_int64_t)
    gs = int(global_shape, c_int64_t)
    off = int(offset, c_int64_t)
    if (.not. is_contiguous(a)) then
      call finish(VLCC_EINVAL, ierr, name // ": array is not contiguous")
      return
    end if
    call finish(c_register_ex(cstr(name), c_loc(a), VLCC_FLOAT64, 2, c_loc(ls), &
                c_loc(gs), c_loc(off), int(halo, c_int), VLCC_ORDER_F), ierr, "vlcc_register")
  end subroutine reg_r8_2_s8
  subroutine regl_r8_2(name, a, ierr)
    character(len=*), intent(in) :: name
    real(real64), intent(inout), target :: a(:,:)
    integer, intent(out), optional :: ierr
    integer(c_int64_t), target :: ls(2)
    ls = int(shape(a), c_int64_t)
    if (.not. is_contiguous(a)) then
      call finish(VLCC_EINVAL, ierr, name // ": array is not contiguous")
      return
    end if
    call finish(c_register_ex(cstr(name), c_loc(a), VLCC_FLOAT64, 2, c_loc(ls), &
                c_null_ptr, c_null_ptr, 0_c_int, VLCC_ORDER_F), ierr, "vlcc_register_local")
  end subroutine regl_r8_2
  subroutine reg_r8_3_s4(name, a, global_shape, offset, halo, ierr)
    character(len=*), intent(in) :: name
    real(real64), intent(inout), target :: a(:,:,:)
    integer(int32), intent(in) :: global_shape(3), offset(3)
    integer, intent(in) :: halo
    integer, intent(out), optional :: ierr
    integer(c_int64_t), target :: gs(3), off(3), ls(3)
    ls = int(shape(a), c_int64_t)
    gs = int(global_shape, c_int64_t)
    off = int(offset, c_int64_t)
    if (.not. is_contiguous(a)) then
      call finish(VLCC_EINVAL, ierr, name // ": array is not contiguous")
      return
    end if
    call finish(c_register_ex(cstr(name), c_loc(a), VLCC_FLOAT64, 3, c_loc(ls), &
                c_loc(gs), c_loc(off), int(halo, c_int), VLCC_ORDER_F), ierr, "vlcc_register")
  end subroutine reg_r8_3_s4
  subroutine reg_r8_3_s8(name, a, global_shape, offset, halo, ierr)
    character(len=*), intent(in) :: name
    real(real64), intent(inout), target :: a(:,:,:)
    integer(int64), intent(in) :: global_shape(3), offset(3)
    integer, intent(in) :: halo
    integer, intent(out), optional :: ierr
    integer(c_int64_t), target :: gs(3), off(3), ls(3)
    ls = int(shape(a), c_int64_t)
    gs = int(global_shape, c_int64_t)
    off = int(offset, c_int64_t)
    if (.not. is_contiguous(a)) then
      call finish(VLCC_EINVAL, ierr, name // ": array is not contiguous")
      return
    end if
    call finish(c_register_ex(cstr(name), c_loc(a), VLCC_FLOAT64, 3, c_loc(ls), &
                c_loc(gs), c_loc(off), int(halo, c_int), VLCC_ORDER_F), ierr, "vlcc_register")
  end subroutine reg_r8_3_s8
  subroutine regl_r8_3(name, a, ierr)
    character(len=*), intent(in) :: name
    real(real64), intent(inout), target :: a(:,:,:)
    integer, intent(out), optional :: ierr
    integer(c_int64_t), target :: ls(3)
    ls = int(shape(a), c_int64_t)
    if (.not. is_contiguous(a)) then
      call finish(VLCC_EINVAL, ierr, name // ": array is not contiguous")
      return
    end if
    call finish(c_register_ex(cstr(name), c_loc(a), VLCC_FLOAT64, 3, c_loc(ls), &
                c_null_ptr, c_null_ptr, 0_c_int, VLCC_ORDER_F), ierr, "vlcc_register_local")
  end subroutine regl_r8_3
  subroutine reg_i4_1_s4(name, a, global_shape, offset, halo, ierr)
    character(len=*), intent(in) :: name
    integer(int32), intent(inout), target :: a(:)
    integer(int32), intent(in) :: global_shape(1), offset(1)
    integer, intent(in) :: halo
    integer, intent(out), optional :: ierr
    integer(c_int64_t), target :: gs(1), off(1), ls(1)
    ls = int(shape(a), c_int64_t)
    gs = int(global_shape, c_int64_t)
    off = int(offset, c_int64_t)
    if (.not. is_contiguous(a)) then
      call finish(VLCC_EINVAL, ierr, name // ": array is not contiguous")
      return
    end if
    call finish(c_register_ex(cstr(name), c_loc(a), VLCC_INT32, 1, c_loc(ls), &
                c_loc(gs), c_loc(off), int(halo, c_int), VLCC_ORDER_F), ierr, "vlcc_register")
  end subroutine reg_i4_1_s4
  subroutine reg_i4_1_s8(name, a, global_shape, offset, halo, ierr)
    character(len=*), intent(in) :: name
    integer(int32), intent(inout), target :: a(:)
    integer(int64), intent(in) :: global_shape(1), offset(1)
    integer, intent(in) :: halo
    integer, intent(out), optional :: ierr
    integer(c_int64_t), target :: gs(1), off(1), ls(1)
    ls = int(shape(a), c_int64_t)
    gs = int(global_shape, c_int64_t)
    off = int(offset, c_int64_t)
    if (.not. is_contiguous(a)) then
      call finish(VLCC_EINVAL, ierr, name // ": array is not contiguous")
      return
    end if
    call finish(c_register_ex(cstr(name), c_loc(a), VLCC_INT32, 1, c_loc(ls), &
                c_loc(gs), c_loc(off), int(halo, c_int), VLCC_ORDER_F), ierr, "vlcc_register")
  end subroutine reg_i4_1_s8
  subroutine regl_i4_1(name, a, ierr)
    character(len=*), intent(in) :: name
    integer(int32), intent(inout), target :: a(:)
    integer, intent(out), optional :: ierr
    integer(c_int64_t), target :: ls(1)
    ls = int(shape(a), c_int64_t)
    if (.not. is_contiguous(a)) then
      call finish(VLCC_EINVAL, ierr, name // ": array is not contiguous")
      return
    end if
    call finish(c_register_ex(cstr(name), c_loc(a), VLCC_INT32, 1, c_loc(ls), &
                c_null_ptr, c_null_ptr, 0_c_int, VLCC_ORDER_F), ierr, "vlcc_register_local")
  end subroutine regl_i4_1
  subroutine reg_i4_2_s4(name, a, global_shape, offset, halo, ierr)
    character(len=*), intent(in) :: name
    integer(int32), intent(inout), target :: a(:,:)
    integer(int32), intent(in) :: global_shape(2), offset(2)
    integer, intent(in) :: halo
    integer, intent(out), optional :: ierr
    integer(c_int64_t), target :: gs(2), off(2), ls(2)
    ls = int(shape(a), c_int64_t)
    gs = int(global_shape, c_int64_t)
    off = int(offset, c_int64_t)
    if (.not. is_contiguous(a)) then
      call finish(VLCC_EINVAL, ierr, name // ": array is not contiguous")
      return
    end if
    call finish(c_register_ex(cstr(name), c_loc(a), VLCC_INT32, 2, c_loc(ls), &
                c_loc(gs), c_loc(off), int(halo, c_int), VLCC_ORDER_F), ierr, "vlcc_register")
  end subroutine reg_i4_2_s4
  subroutine reg_i4_2_s8(name, a, global_shape, offset, halo, ierr)
    character(len=*), intent(in) :: name
    integer(int32), intent(inout), target :: a(:,:)
    integer(int64), intent(in) :: global_shape(2), offset(2)
    integer, intent(in) :: halo
    integer, intent(out), optional :: ierr
    integer(c_int64_t), target :: gs(2), off(2), ls(2)
    ls = int(shape(a), c_int64_t)
    gs = int(global_shape, c_int64_t)
    off = int(offset, c_int64_t)
    if (.not. is_contiguous(a)) then
      call finish(VLCC_EINVAL, ierr, name // ": array is not contiguous")
      return
    end if
    call finish(c_register_ex(cstr(name), c_loc(a), VLCC_INT32, 2, c_loc(ls), &
                c_loc(gs), c_loc(off), int(halo, c_int), VLCC_ORDER_F), ierr, "vlcc_register")
  end subroutine reg_i4_2_s8
  subroutine regl_i4_2(name, a, ierr)
    character(len=*), intent(in) :: name
    integer(int32), intent(inout), target :: a(:,:)
    integer, intent(out), optional :: ierr
    integer(c_int64_t), target :: ls(2)
    ls = int(shape(a), c_int64_t)
    if (.not. is_contiguous(a)) then
      call finish(VLCC_EINVAL, ierr, name // ": array is not contiguous")
      return
    end if
    call finish(c_register_ex(cstr(name), c_loc(a), VLCC_INT32, 2, c_loc(ls), &
                c_null_ptr, c_null_ptr, 0_c_int, VLCC_ORDER_F), ierr, "vlcc_register_local")
  end subroutine regl_i4_2
  subroutine reg_i4_3_s4(name, a, global_shape, offset, halo, ierr)
    character(len=*), intent(in) :: name
    integer(int32), intent(inout), target :: a(:,:,:)
    integer(int32), intent(in) :: global_shape(3), offset(3)
    integer, intent(in) :: halo
    integer, intent(out), optional :: ierr
    integer(c_int64_t), target :: gs(3), off(3), ls(3)
    ls = int(shape(a), c_int64_t)
    gs = int(global_shape, c_int64_t)
    off = int(offset, c_int64_t)
    if (.not. is_contiguous(a)) then
      call finish(VLCC_EINVAL, ierr, name // ": array is not contiguous")
      return
    end if
    call finish(c_register_ex(cstr(name), c_loc(a), VLCC_INT32, 3, c_loc(ls), &
                c_loc(gs), c_loc(off), int(halo, c_int), VLCC_ORDER_F), ierr, "vlcc_register")
  end subroutine reg_i4_3_s4
  subroutine reg_i4_3_s8(name, a, global_shape, offset, halo, ierr)
    character(len=*), intent(in) :: name
    integer(int32), intent(inout), target :: a(:,:,:)
    integer(int64), intent(in) :: global_shape(3), offset(3)
    integer, intent(in) :: halo
    integer, intent(out), optional :: ierr
    integer(c_int64_t), target :: gs(3), off(3), ls(3)
    ls = int(shape(a), c_int64_t)
    gs = int(global_shape, c_int64_t)
    off = int(offset, c_int64_t)
    if (.not. is_contiguous(a)) then
      call finish(VLCC_EINVAL, ierr, name // ": array is not contiguous")
      return
    end if
    call finish(c_register_ex(cstr(name), c_loc(a), VLCC_INT32, 3, c_loc(ls), &
                c_loc(gs), c_loc(off), int(halo, c_int), VLCC_ORDER_F), ierr, "vlcc_register")
  end subroutine reg_i4_3_s8
  subroutine regl_i4_3(name, a, ierr)
    character(len=*), intent(in) :: name
    integer(int32), intent(inout), target :: a(:,:,:)
    integer, intent(out), optional :: ierr
    integer(c_int64_t), target :: ls(3)
    ls = int(shape(a), c_int64_t)
    if (.not. is_contiguous(a)) then
      call finish(VLCC_EINVAL, ierr, name // ": array is not contiguous")
      return
    end if
    call finish(c_register_ex(cstr(name), c_loc(a), VLCC_INT32, 3, c_loc(ls), &
                c_null_ptr, c_null_ptr, 0_c_int, VLCC_ORDER_F), ierr, "vlcc_register_local")
  end subroutine regl_i4_3
  subroutine reg_i8_1_s4(name, a, global_shape, offset, halo, ierr)
    character(len=*), intent(in) :: name
    integer(int64), intent(inout), target :: a(:)
    integer(int32), intent(in) :: global_shape(1), offset(1)
    integer, intent(in) :: halo
    integer, intent(out), optional :: ierr
    integer(c_int64_t), target :: gs(1), off(1), ls(1)
    ls = int(shape(a), c_int64_t)
    gs = int(global_shape, c_int64_t)
    off = int(offset, c_int64_t)
    if (.not. is_contiguous(a)) then
      call finish(VLCC_EINVAL, ierr, name // ": array is not contiguous")
      return
    end if
    call finish(c_register_ex(cstr(name), c_loc(a), VLCC_INT64, 1, c_loc(ls), &
                c_loc(gs), c_loc(off), int(halo, c_int), VLCC_ORDER_F), ierr, "vlcc_register")
  end subroutine reg_i8_1_s4
  subroutine reg_i8_1_s8(name, a, global_shape, offset, halo, ierr)
    character(len=*), intent(in) :: name
    integer(int64), intent(inout), target :: a(:)
    integer(int64), intent(in) :: global_shape(1), offset(1)
    integer, intent(in) :: halo
    integer, intent(out), optional :: ierr
    integer(c_int64_t), target :: gs(1), off(1), ls(1)
    ls = int(shape(a), c_int64_t)
    gs = int(global_shape, c_int64_t)
    off = int(offset, c_int64_t)
    if (.not. is_contiguous(a)) then
      call finish(VLCC_EINVAL, ierr, name // ": array is not contiguous")
      return
    end if
    call finish(c_register_ex(cstr(name), c_loc(a), VLCC_INT64, 1, c_loc(ls), &
                c_loc(gs), c_loc(off), int(halo, c_int), VLCC_ORDER_F), ierr, "vlcc_register")
  end subroutine reg_i8_1_s8
  subroutine regl_i8_1(name, a, ierr)
    character(len=*), intent(in) :: name
    integer(int64), intent(inout), target :: a(:)
    integer, intent(out), optional :: ierr
    integer(c_int64_t), target :: ls(1)
    ls = int(shape(a), c_int64_t)
    if (.not. is_contiguous(a)) then
      call finish(VLCC_EINVAL, ierr, name // ": array is not contiguous")
      return
    end if
    call finish(c_register_ex(cstr(name), c_loc(a), VLCC_INT64, 1, c_loc(ls), &
                c_null_ptr, c_null_ptr, 0_c_int, VLCC_ORDER_F), ierr, "vlcc_register_local")
  end subroutine regl_i8_1
  subroutine reg_i8_2_s4(name, a, global_shape, offset, halo, ierr)
    character(len=*), intent(in) :: name
    integer(int64), intent(inout), target :: a(:,:)
    integer(int32), intent(in) :: global_shape(2), offset(2)
    integer, intent(in) :: halo
    integer, intent(out), optional :: ierr
    integer(c_int64_t), target :: gs(2), off(2), ls(2)
    ls = int(shape(a), c_int64_t)
    gs = int(global_shape, c_int64_t)
    off = int(offset, c_int64_t)
    if (.not. is_contiguous(a)) then
      call finish(VLCC_EINVAL, ierr, name // ": array is not contiguous")
      return
    end if
    call finish(c_register_ex(cstr(name), c_loc(a), VLCC_INT64, 2, c_loc(ls), &
                c_loc(gs), c_loc(off), int(halo, c_int), VLCC_ORDER_F), ierr, "vlcc_register")
  end subroutine reg_i8_2_s4
  subroutine reg_i8_2_s8(name, a, global_shape, offset, halo, ierr)
    character(len=*), intent(in) :: name
    integer(int64), intent(inout), target :: a(:,:)
    integer(int64), intent(in) :: global_shape(2), offset(2)
    integer, intent(in) :: halo
    integer, intent(out), optional :: ierr
    integer(c_int64_t), target :: gs(2), off(2), ls(2)
    ls = int(shape(a), c_int64_t)
    gs = int(global_shape, c_int64_t)
    off = int(offset, c_int64_t)
    if (.not. is_contiguous(a)) then
      call finish(VLCC_EINVAL, ierr, name // ": array is not contiguous")
      return
    end if
    call finish(c_register_ex(cstr(name), c_loc(a), VLCC_INT64, 2, c_loc(ls), &
                c_loc(gs), c_loc(off), int(halo, c_int), VLCC_ORDER_F), ierr, "vlcc_register")
  end subroutine reg_i8_2_s8
  subroutine regl_i8_2(name, a, ierr)
    character(len=*), intent(in) :: name
    integer(int64), intent(inout), target :: a(:,:)
    integer, intent(out), optional :: ierr
    integer(c_int64_t), target :: ls(2)
    ls = int(shape(a), c_int64_t)
    if (.not. is_contiguous(a)) then
      call finish(VLCC_EINVAL, ierr, name // ": array is not contiguous")
      return
    end if
    call finish(c_register_ex(cstr(name), c_loc(a), VLCC_INT64, 2, c_loc(ls), &
                c_null_ptr, c_null_ptr, 0_c_int, VLCC_ORDER_F), ierr, "vlcc_register_local")
  end subroutine regl_i8_2
  subroutine reg_i8_3_s4(name, a, global_shape, offset, halo, ierr)
    character(len=*), intent(in) :: name
    integer(int64), intent(inout), target :: a(:,:,:)
    integer(int32), intent(in) :: global_shape(3), offset(3)
    integer, intent(in) :: halo
    integer, intent(out), optional :: ierr
    integer(c_int64_t), target :: gs(3), off(3), ls(3)
    ls = int(shape(a), c_int64_t)
    gs = int(global_shape, c_int64_t)
    off = int(offset, c_int64_t)
    if (.not. is_contiguous(a)) then
      call finish(VLCC_EINVAL, ierr, name // ": array is not contiguous")
      return
    end if
    call finish(c_register_ex(cstr(name), c_loc(a), VLCC_INT64, 3, c_loc(ls), &
                c_loc(gs), c_loc(off), int(halo, c_int), VLCC_ORDER_F), ierr, "vlcc_register")
  end subroutine reg_i8_3_s4
  subroutine reg_i8_3_s8(name, a, global_shape, offset, halo, ierr)
    character(len=*), intent(in) :: name
    integer(int64), intent(inout), target :: a(:,:,:)
    integer(int64), intent(in) :: global_shape(3), offset(3)
    integer, intent(in) :: halo
    integer, intent(out), optional :: ierr
    integer(c_int64_t), target :: gs(3), off(3), ls(3)
    ls = int(shape(a), c_int64_t)
    gs = int(global_shape, c_int64_t)
    off = int(offset, c_int64_t)
    if (.not. is_contiguous(a)) then
      call finish(VLCC_EINVAL, ierr, name // ": array is not contiguous")
      return
    end if
    call finish(c_register_ex(cstr(name), c_loc(a), VLCC_INT64, 3, c_loc(ls), &
                c_loc(gs), c_loc(off), int(halo, c_int), VLCC_ORDER_F), ierr, "vlcc_register")
  end subroutine reg_i8_3_s8
  subroutine regl_i8_3(name, a, ierr)
    character(len=*), intent(in) :: name
    integer(int64), intent(inout), target :: a(:,:,:)
    integer, intent(out), optional :: ierr
    integer(c_int64_t), target :: ls(3)
    ls = int(shape(a), c_int64_t)
    if (.not. is_contiguous(a)) then
      call finish(VLCC_EINVAL, ierr, name // ": array is not contiguous")
      return
    end if
    call finish(c_register_ex(cstr(name), c_loc(a), VLCC_INT64, 3, c_loc(ls), &
                c_null_ptr, c_null_ptr, 0_c_int, VLCC_ORDER_F), ierr, "vlcc_register_local")
  end subroutine regl_i8_3
  ! ---- helpers -------------------------------------------------------------------
  function cstr(s) result(c)
    character(len=*), intent(in) :: s
    character(kind=c_char, len=len_trim(s) + 1) :: c
    c = trim(s) // c_null_char
  end function cstr

  function fstr(p) result(s)
    type(c_ptr), intent(in) :: p
    character(len=:), allocatable :: s
    character(kind=c_char), pointer :: chars(:)
    integer :: n, i
    if (.not. c_associated(p)) then
      s = ""
      return
    end if
    n = int(c_strlen(p))
    call c_f_pointer(p, chars, [n])
    allocate(character(len=n) :: s)
    do i = 1, n
      s(i:i) = chars(i)
    end do
  end function fstr

  subroutine finish(rc, ierr, what)
    integer(c_int), intent(in) :: rc
    integer, intent(out), optional :: ierr
    character(len=*), intent(in) :: what
    if (present(ierr)) then
      ierr = int(rc)
    else if (rc /= VLCC_OK) then
      write (error_unit, '(a)') "vlcc: " // what // " failed: " // fstr(c_last_error())
      error stop 2
    end if
  end subroutine finish

  subroutine copy_id(buf, out)
    character(kind=c_char), intent(in) :: buf(:)
    character(len=*), intent(out) :: out
    integer :: i
    out = ""
    do i = 1, min(size(buf), len(out))
      if (buf(i) == c_null_char) exit
      out(i:i) = buf(i)
    end do
  end subroutine copy_id

  ! ---- public procedures ---------------------------------------------------------
  !> Start vlcc on the communicator with Fortran handle `comm` (collective).
  subroutine vlcc_init(path, comm, ierr, options)
    character(len=*), intent(in) :: path
    integer, intent(in) :: comm
    integer, intent(out), optional :: ierr
    character(len=*), intent(in), optional :: options
    character(kind=c_char, len=:), allocatable, target :: copt
    type(c_ptr) :: popt
    popt = c_null_ptr
    if (present(options)) then
      copt = cstr(options)
      popt = c_loc(copt)
    end if
    call finish(c_init_f(cstr(path), int(comm, c_int), popt), ierr, "vlcc_init")
  end subroutine vlcc_init

  subroutine vlcc_unregister(name, ierr)
    character(len=*), intent(in) :: name
    integer, intent(out), optional :: ierr
    call finish(c_unregister(cstr(name)), ierr, "vlcc_unregister")
  end subroutine vlcc_unregister

  !> Collective: capture every registered provider into a new version.
  subroutine checkpoint_i8(step, message, ierr, version_id)
    integer(int64), intent(in) :: step
    character(len=*), intent(in) :: message
    integer, intent(out), optional :: ierr
    character(len=*), intent(out), optional :: version_id
    character(kind=c_char) :: buf(VLCC_ID_MAX)
    integer(c_int) :: rc
    buf = c_null_char
    rc = c_checkpoint(int(step, c_int64_t), cstr(message), buf, int(VLCC_ID_MAX, c_size_t))
    if (present(version_id)) call copy_id(buf, version_id)
    call finish(rc, ierr, "vlcc_checkpoint")
  end subroutine checkpoint_i8

  subroutine checkpoint_i4(step, message, ierr, version_id)
    integer(int32), intent(in) :: step
    character(len=*), intent(in) :: message
    integer, intent(out), optional :: ierr
    character(len=*), intent(out), optional :: version_id
    call checkpoint_i8(int(step, int64), message, ierr, version_id)
  end subroutine checkpoint_i4

  !> Collective: restore every provider from `version` ("latest", an id, "tag:NAME", "branch:NAME").
  subroutine vlcc_restore(version, ierr)
    character(len=*), intent(in) :: version
    integer, intent(out), optional :: ierr
    call finish(c_restore(cstr(version)), ierr, "vlcc_restore")
  end subroutine vlcc_restore

  !> Collective: resolve `version` to its id and step (VLCC_ENOTFOUND if there is none).
  subroutine vlcc_query(version, ierr, version_id, step)
    character(len=*), intent(in) :: version
    integer, intent(out), optional :: ierr
    character(len=*), intent(out), optional :: version_id
    integer(int64), intent(out), optional :: step
    character(kind=c_char) :: buf(VLCC_ID_MAX)
    integer(c_int64_t) :: s
    integer(c_int) :: rc
    buf = c_null_char
    rc = c_query(cstr(version), buf, int(VLCC_ID_MAX, c_size_t), s)
    if (present(version_id)) call copy_id(buf, version_id)
    if (present(step)) step = s
    call finish(rc, ierr, "vlcc_query")
  end subroutine vlcc_query

  subroutine vlcc_branch(name, at, ierr)
    character(len=*), intent(in) :: name, at
    integer, intent(out), optional :: ierr
    character(kind=c_char, len=:), allocatable, target :: cat
    cat = cstr(at)
    call finish(c_branch(cstr(name), c_loc(cat)), ierr, "vlcc_branch")
  end subroutine vlcc_branch

  subroutine vlcc_switch(name, create, ierr)
    character(len=*), intent(in) :: name
    logical, intent(in) :: create
    integer, intent(out), optional :: ierr
    call finish(c_switch(cstr(name), merge(1_c_int, 0_c_int, create)), ierr, "vlcc_switch")
  end subroutine vlcc_switch

  subroutine vlcc_tag(name, version, ierr)
    character(len=*), intent(in) :: name, version
    integer, intent(out), optional :: ierr
    character(kind=c_char, len=:), allocatable, target :: cv
    cv = cstr(version)
    call finish(c_tag(cstr(name), c_loc(cv)), ierr, "vlcc_tag")
  end subroutine vlcc_tag

  subroutine vlcc_wait(ierr)
    integer, intent(out), optional :: ierr
    call finish(c_wait(), ierr, "vlcc_wait")
  end subroutine vlcc_wait

  subroutine vlcc_finalize(ierr)
    integer, intent(out), optional :: ierr
    call finish(c_finalize(), ierr, "vlcc_finalize")
  end subroutine vlcc_finalize

  !> Message of the last failing call on this rank.
  function vlcc_last_error() result(s)
    character(len=:), allocatable :: s
    s = fstr(c_last_error())
  end function vlcc_last_error

  function vlcc_strerror(code) result(s)
    integer, intent(in) :: code
    character(len=:), allocatable :: s
    s = fstr(c_strerror(int(code, c_int)))
  end function vlcc_strerror
end module vlcc
