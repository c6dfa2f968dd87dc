"""A communicator for the vlcc core built on torch.distributed.

The core talks to an mpi4py-like communicator: ``rank``/``size``,
``Get_rank()``/``Get_size()``, ``gather``, ``bcast``, ``allgather``,
``allreduce`` (ops ``MPI.MIN``/``MAX``/``SUM``/..., or Python callables),
``barrier``, ``Dup()`` and ``Free()``, all on picklable objects. Under
``torchrun`` there is no MPI launcher, so :class:`TorchComm` provides that
subset with torch.distributed's object collectives on a private gloo group
(gloo moves pickled objects on CPU whatever backend the model uses, and a
private group keeps vlcc's messages apart from the application's, as
``MPI_Comm_dup`` does). :class:`SelfComm` is the one-process case without any
process group or MPI.
"""

from __future__ import annotations

import functools
import operator
import os
from typing import Any, Callable

import torch.distributed as dist

from ..errors import VlccError


def _mpi_op_name(op: Any) -> str | None:
    """The name of an mpi4py reduction op (``MPI.MIN`` → "MIN"), without
    importing mpi4py unless the caller already did."""
    import sys
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is None:
        return None
    for name in ("MIN", "MAX", "SUM", "PROD", "LAND", "LOR", "BAND", "BOR"):
        if op == getattr(mpi, name):
            return name
    return None


_REDUCE: dict[str, Callable[[list], Any]] = {
    "MIN": min,
    "MAX": max,
    "SUM": lambda xs: functools.reduce(operator.add, xs),
    "PROD": lambda xs: functools.reduce(operator.mul, xs),
    "LAND": lambda xs: all(xs),
    "LOR": lambda xs: any(xs),
    "BAND": lambda xs: functools.reduce(operator.and_, xs),
    "BOR": lambda xs: functools.reduce(operator.or_, xs),
}


def _reducer(op: Any) -> Callable[[list], Any]:
    if op is None:
        return _REDUCE["SUM"]
    if isinstance(op, str) and op.upper() in _REDUCE:
        return _REDUCE[op.upper()]
    name = _mpi_op_name(op)
    if name is not None:
        return _REDUCE[name]
    if op in (min, max, sum, all, any):
        return op
    if callable(op):   # a binary function, as mpi4py's Op.Create takes
        return lambda xs: functools.reduce(op, xs)
    raise VlccError(f"allreduce: unsupported reduction op {op!r}")


class _ObjectComm:
    """Shared mpi4py-style aliases."""

    rank: int
    size: int

    def Get_rank(self) -> int:
        return self.rank

    def Get_size(self) -> int:
        return self.size

    def allreduce(self, obj: Any, op: Any = None) -> Any:
        return _reducer(op)(self.allgather(obj))

    def reduce(self, obj: Any, op: Any = None, root: int = 0) -> Any:
        vals = self.gather(obj, root=root)
        return _reducer(op)(vals) if self.rank == root else None

    def Barrier(self) -> None:
        self.barrier()


class SelfComm(_ObjectComm):
    """One process, no process group and no MPI."""

    rank, size = 0, 1
    threads_ok = True      # nothing is sent: the flusher may hash, agree and commit

    def gather(self, obj: Any, root: int = 0) -> list:
        return [obj]

    def allgather(self, obj: Any) -> list:
        return [obj]

    def bcast(self, obj: Any, root: int = 0) -> Any:
        return obj

    def barrier(self) -> None:
        pass

    def Dup(self) -> "SelfComm":
        return SelfComm()

    def Free(self) -> None:
        pass


class TorchComm(_ObjectComm):
    """The mpi4py subset on a torch.distributed process group.

    ``group``: a process group (default: the world group). vlcc duplicates
    it (:meth:`Dup`) into a gloo group of the same ranks, created by those
    ranks only (``use_local_synchronization``), so a sub-group works too.
    """

    # A duplicate (Dup) is its own gloo group with its own connections: vlcc's
    # flusher thread runs its collectives there while the application's thread
    # uses this one (and the application its own groups).
    threads_ok = True

    def __init__(self, group: Any = None, *, _owned: bool = False):
        if not dist.is_available() or not dist.is_initialized():
            raise VlccError("TorchComm needs an initialized torch.distributed process group "
                            "(torch.distributed.init_process_group, e.g. under torchrun)")
        self.group = group if group is not None else dist.group.WORLD
        self.rank = dist.get_rank(self.group)
        if self.rank < 0:
            raise VlccError("this process is not a member of the process group given to vlcc")
        self.size = dist.get_world_size(self.group)
        self._ranks = dist.get_process_group_ranks(self.group)   # group rank → global rank
        self._owned = _owned

    def _global(self, root: int) -> int:
        if not 0 <= root < self.size:
            raise VlccError(f"root {root} is not a rank of a group of {self.size}")
        return self._ranks[root]

    def gather(self, obj: Any, root: int = 0) -> list | None:
        out = [None] * self.size if self.rank == root else None
        dist.gather_object(obj, out, dst=self._global(root), group=self.group)
        return out

    def allgather(self, obj: Any) -> list:
        out = [None] * self.size
        dist.all_gather_object(out, obj, group=self.group)
        return out

    def bcast(self, obj: Any, root: int = 0) -> Any:
        box = [obj if self.rank == root else None]
        dist.broadcast_object_list(box, src=self._global(root), group=self.group)
        return box[0]

    def barrier(self) -> None:
        # gloo barrier; device_ids is a NCCL-only argument
        dist.barrier(group=self.group)

    def Dup(self) -> "TorchComm":
        grp = dist.new_group(ranks=self._ranks, backend="gloo", use_local_synchronization=True)
        return TorchComm(grp, _owned=True)

    def Free(self) -> None:
        if self._owned and self.group is not None and dist.is_initialized():
            try:
                dist.destroy_process_group(self.group)
            except Exception:   # the world group may be gone already at interpreter exit
                pass
        self.group = None


def _under_mpi_launcher() -> bool:
    return any(k in os.environ for k in ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_RANK",
                                          "PMIX_RANK", "MPI_LOCALRANKID"))


def resolve_comm(group: Any = None) -> Any:
    """The communicator vlcc.torch uses for ``group``:

    * an mpi4py communicator (has ``Dup`` and ``Get_rank``) or a TorchComm/SelfComm: as is;
    * a torch.distributed process group, or None while torch.distributed is
      initialized: :class:`TorchComm` on it (torchrun, no MPI needed);
    * None under mpiexec without torch.distributed: ``MPI.COMM_WORLD``;
    * None otherwise: :class:`SelfComm` (one process).
    """
    if isinstance(group, (TorchComm, SelfComm)):
        return group
    if group is not None and hasattr(group, "Dup") and hasattr(group, "Get_rank"):
        return group
    if group is not None or (dist.is_available() and dist.is_initialized()):
        return TorchComm(group)
    if _under_mpi_launcher():
        from mpi4py import MPI
        return MPI.COMM_WORLD
    return SelfComm()


__all__ = ["TorchComm", "SelfComm", "resolve_comm"]
