"""A one-rank communicator for serial use without any MPI library.

A single process (laptop, notebook, serial solver) checkpoints with ``comm=None``: when the
process was not started by an MPI launcher and has not loaded MPI itself, the Checkpointer runs
on :class:`SerialComm`, which implements the subset of mpi4py's object interface the core uses
(``rank``/``size``, ``Dup``/``Free``, ``bcast``, ``gather``, ``allgather``, ``allreduce``,
``reduce``, ``barrier``). The repository it writes is the same format an MPI run writes with
one rank (``nranks = 1``); MPI runs restore it on any number of ranks.
"""

from __future__ import annotations

from typing import Any

from .. import _mpi


class SerialComm:
    """mpi4py's object-collective subset on one process: every collective returns the
    value a one-rank communicator would."""

    rank = 0
    size = 1

    def Get_rank(self) -> int:
        return 0

    def Get_size(self) -> int:
        return 1

    def Dup(self) -> "SerialComm":
        return SerialComm()

    def Free(self) -> None:
        pass

    def bcast(self, obj: Any, root: int = 0) -> Any:
        _check_root(root)
        return obj

    def gather(self, obj: Any, root: int = 0) -> list | None:
        _check_root(root)
        return [obj]

    def allgather(self, obj: Any) -> list:
        return [obj]

    def scatter(self, objs, root: int = 0) -> Any:
        _check_root(root)
        objs = list(objs)
        if len(objs) != 1:
            raise _mpi.VlccError(f"scatter on one rank needs 1 item, got {len(objs)}")
        return objs[0]

    def allreduce(self, obj: Any, op: Any = None) -> Any:
        return obj               # the reduction of one value is that value, whatever the op

    def reduce(self, obj: Any, op: Any = None, root: int = 0) -> Any:
        _check_root(root)
        return obj

    def barrier(self) -> None:
        pass

    Barrier = barrier

    def __repr__(self) -> str:
        return "SerialComm(rank=0, size=1)"


def _check_root(root: int) -> None:
    if root != 0:
        raise _mpi.VlccError(f"root {root} is not a rank of a one-rank communicator")


def default_comm():
    """The communicator ``comm=None`` means: ``MPI.COMM_WORLD`` when the process is one rank
    of a launched job or already uses MPI (MPI loaded lazily, with the clear error of
    vlcc._mpi.load when it cannot be), else a :class:`SerialComm` that needs no MPI."""
    if _mpi.loaded() or _mpi.under_launcher():
        return _mpi.load().COMM_WORLD
    return SerialComm()
