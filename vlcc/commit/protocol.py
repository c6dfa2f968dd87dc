"""Error-propagating collectives.

Every public collective operation of vlcc is built from these two steps so that
(1) all ranks enter the same MPI calls in the same order, whatever fails, and
(2) an exception on any rank is raised on every rank (Promise 5: no hangs).
"""

from __future__ import annotations

import traceback
from typing import Any, Callable, TypeVar

from ..errors import VlccError, error_class

T = TypeVar("T")


def _run(fn: Callable[[], T]) -> tuple[tuple, BaseException | None]:
    try:
        return ("ok", fn()), None
    except Exception as exc:  # noqa: BLE001 - every failure must reach the other ranks
        return ("err", type(exc).__name__, str(exc) or traceback.format_exc(limit=1)), exc


def _raise(comm, out: tuple, own: BaseException | None):
    if out[0] == "ok":
        return out[1]
    if own is not None:
        raise own
    _, rank, cls, msg = out
    exc_cls = error_class(cls)
    prefix = "" if comm.size == 1 else f"rank {rank}: "
    if exc_cls.__name__ == cls:
        raise exc_cls(f"{prefix}{msg}")
    raise exc_cls(f"{prefix}{cls}: {msg}")


def gather_decide(comm, local: Callable[[], Any], decide: Callable[[list], T]) -> T:
    """Run ``local`` on every rank, gather the results on rank 0, run ``decide``
    there on the list of results (index = rank) and broadcast its return value.

    If ``local`` fails on any rank, or ``decide`` fails, every rank raises: the
    failing rank its own exception, the others the same class with the message
    prefixed by the failing rank."""
    payload, own = _run(local)
    gathered = comm.gather(payload, root=0)
    out: tuple = ("ok", None)
    if comm.rank == 0:
        failed = [(r, p) for r, p in enumerate(gathered) if p[0] == "err"]
        if failed:
            r, p = failed[0]
            out = ("err", r, p[1], p[2])
        else:
            res, exc = _run(lambda: decide([p[1] for p in gathered]))
            out = res if exc is None else ("err", 0, res[1], res[2])
            if exc is not None:
                own = own or exc
    out = comm.bcast(out, root=0)
    if out[0] == "err" and comm.rank != out[1]:
        own = None  # raise the failing rank's error, not a local side effect
    return _raise(comm, out, own)


def agree(comm, local: Callable[[], T]) -> T:
    """Run ``local`` on every rank; if it fails anywhere, raise on all ranks."""
    payload, own = _run(local)
    status = None if payload[0] == "ok" else (payload[1], payload[2])
    statuses = comm.allgather(status)
    for r, s in enumerate(statuses):
        if s is not None:
            if comm.rank == r:
                raise own  # type: ignore[misc]
            return _raise(comm, ("err", r, s[0], s[1]), None)
    return payload[1]


def root_only(comm, fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0 only and broadcast its result (or its error) to all."""
    return gather_decide(comm, lambda: None, lambda _results: fn())


__all__ = ["gather_decide", "agree", "root_only", "VlccError"]
