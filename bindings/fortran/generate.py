"""Render the Fortran module ``vlcc`` from ``vlcc.f90.in``.

Fortran has no generics over type and rank, so ``vlcc_register`` needs one
specific procedure per (type kind, array rank, integer kind of the shape
arguments). They differ only in those names; this script writes them from one
template each instead of keeping 36 hand-copied procedures in the source.

    python bindings/fortran/generate.py > vlcc.f90
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

#        tag    Fortran type        vlcc dtype
TYPES = [("r4", "real(real32)", "VLCC_FLOAT32"), ("r8", "real(real64)", "VLCC_FLOAT64"),
         ("i4", "integer(int32)", "VLCC_INT32"), ("i8", "integer(int64)", "VLCC_INT64")]
RANKS = (1, 2, 3)
SHAPE_KINDS = [("s4", "int32"), ("s8", "int64")]

REGISTER = """\
  subroutine reg_{t}_{r}_{s}(name, a, global_shape, offset, halo, ierr)
    character(len=*), intent(in) :: name
    {ftype}, intent(inout), target :: a({dims})
    integer({skind}), intent(in) :: global_shape({r}), offset({r})
    integer, intent(in) :: halo
    integer, intent(out), optional :: ierr
    integer(c_int64_t), target :: gs({r}), off({r}), ls({r})
    ls = int(shape(a), c_int64_t)
    gs = int(global_shape, c_int64_t)
    off = int(offset, c_int64_t)
    if (.not. is_contiguous(a)) then
      call finish(VLCC_EINVAL, ierr, name // ": array is not contiguous")
      return
    end if
    call finish(c_register_ex(cstr(name), c_loc(a), {dtype}, {r}, c_loc(ls), &
                c_loc(gs), c_loc(off), int(halo, c_int), VLCC_ORDER_F), ierr, "vlcc_register")
  end subroutine reg_{t}_{r}_{s}
"""

REGISTER_LOCAL = """\
  subroutine regl_{t}_{r}(name, a, ierr)
    character(len=*), intent(in) :: name
    {ftype}, intent(inout), target :: a({dims})
    integer, intent(out), optional :: ierr
    integer(c_int64_t), target :: ls({r})
    ls = int(shape(a), c_int64_t)
    if (.not. is_contiguous(a)) then
      call finish(VLCC_EINVAL, ierr, name // ": array is not contiguous")
      return
    end if
    call finish(c_register_ex(cstr(name), c_loc(a), {dtype}, {r}, c_loc(ls), &
                c_null_ptr, c_null_ptr, 0_c_int, VLCC_ORDER_F), ierr, "vlcc_register_local")
  end subroutine regl_{t}_{r}
"""


def _variants():
    for t, ftype, dtype in TYPES:
        for r in RANKS:
            yield t, r, ftype, dtype, ",".join([":"] * r)


def _procedure_list(names: list[str], per_line: int) -> str:
    rows = [", ".join(names[i:i + per_line]) for i in range(0, len(names), per_line)]
    return (", &\n      ").join(rows)


def interfaces() -> str:
    reg = [f"reg_{t}_{r}_{s}" for t, r, *_ in _variants() for s, _k in SHAPE_KINDS]
    loc = [f"regl_{t}_{r}" for t, r, *_ in _variants()]
    return ("  interface vlcc_register\n    module procedure " + _procedure_list(reg, 4) +
            "\n  end interface vlcc_register\n\n"
            "  interface vlcc_register_local\n    module procedure " + _procedure_list(loc, 4) +
            "\n  end interface vlcc_register_local\n")


def procedures() -> str:
    out = []
    for t, r, ftype, dtype, dims in _variants():
        for s, skind in SHAPE_KINDS:
            out.append(REGISTER.format(t=t, r=r, s=s, ftype=ftype, dtype=dtype, dims=dims, skind=skind))
        out.append(REGISTER_LOCAL.format(t=t, r=r, ftype=ftype, dtype=dtype, dims=dims))
    return "".join(out)


def render(template: Path = HERE / "vlcc.f90.in") -> str:
    text = template.read_text()
    return (text.replace("!@INTERFACES@\n", interfaces())
                .replace("!@PROCEDURES@\n", procedures()))


if __name__ == "__main__":
    sys.stdout.write(render())
