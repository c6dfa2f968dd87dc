"""The process-wide state of libvlcc: the one Checkpointer the C/Fortran program
uses (created by ``vlcc_init``/``VELOC_Init``, or attached by a Python driver), the
C buffers registered into it (kept alive here), and the communicator handed over
by the program. Every API module (core, veloc, adjoint) reads it through this
module and no other."""

from __future__ import annotations

from . import codes as C
from .codes import CapiError

_ck = None                 # the Checkpointer
_owned = True              # created here (closed at finalize) or attached by a driver
_buffers: dict = {}        # name -> numpy view of a C buffer registered by vlcc_register


def current():
    """The Checkpointer created by vlcc_init in this process (or attached), or None."""
    return _ck


def owned() -> bool:
    return _owned


def require(msg: str = "vlcc is not initialized: call vlcc_init first (or it was finalized)"):
    """The Checkpointer, or ESTATE with ``msg``."""
    if _ck is None:
        raise CapiError(C.ESTATE, msg)
    return _ck


def opened(ck) -> None:
    """``ck`` was created by this library (vlcc_init, VELOC_Init): it owns it."""
    global _ck, _owned, _buffers
    _ck, _owned, _buffers = ck, True, {}


def attach(ck) -> None:
    """Make libvlcc use an existing Python Checkpointer (a Python driver that loads a
    C/Fortran solver library): the solver's vlcc_register calls then add providers to
    ``ck`` and one ``ck.checkpoint()`` captures both sides. vlcc_init then returns
    VLCC_OK without creating another one; vlcc_finalize leaves ``ck`` open."""
    global _ck, _owned
    if _ck is not None and _ck is not ck:
        raise CapiError(C.ESTATE, "libvlcc already has a checkpointer (vlcc_init was called)")
    _ck, _owned = ck, False


def detach() -> None:
    global _ck, _owned, _buffers
    _ck, _owned, _buffers = None, True, {}


def keep(name: str, arr) -> None:
    """Keep the view of a registered C buffer alive while it is registered."""
    _buffers[name] = arr


def forget(name: str) -> None:
    _buffers.pop(name, None)


def kept() -> list[str]:
    return list(_buffers)


def mpi_comm(fcomm: int, what: str):
    """The program's communicator (a Fortran handle, MPI_Comm_c2f) as an mpi4py one;
    MPI must be initialized by the program."""
    from .._mpi import load
    MPI = load()                 # MPIUnavailableError (install routes) if no MPI can be loaded
    if not MPI.Is_initialized() or MPI.Is_finalized():
        raise CapiError(C.ESTATE, f"MPI is not initialized: call MPI_Init before {what}")
    comm = MPI.Comm.f2py(int(fcomm))
    if comm == MPI.COMM_NULL:
        raise CapiError(C.EINVAL, f"{what}: communicator is MPI_COMM_NULL")
    return comm
