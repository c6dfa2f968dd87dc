"""Error-propagating collectives: the ONLY place vlcc calls its communicator.

Every collective operation of vlcc is built from these functions so that
(1) all ranks enter the same calls in the same order, whatever fails, and
(2) an exception on any rank is raised on every rank (Promise 5: no hangs).

The communicator needs only (docs/architecture.md, "Communicators"):
``rank``, ``size``, ``gather(obj, root=0)``, ``bcast(obj, root=0)``,
``allgather(obj)``, ``allreduce(obj, op)`` with ``op`` "min", "max" or "bor"
(stand-ins without MPI: a Python function), and optionally ``Dup()``/``Free()``.
An mpi4py communicator, a serial stand-in or a torch.distributed adapter all
plug in here. On an mpi4py communicator the reductions are MPI's own
(``Allreduce`` of int64 words, :func:`_mpi_reduce`), never mpi4py's pickled
``allreduce``: that one duplicates the communicator at its first call, and such
a hidden ``MPI_Comm_dup`` on the flusher thread, beside the application
thread's collectives, deadlocked MPICH (1 async run in ~10 at 3 ranks).
vlcc creates communicators on the application's thread only
(:func:`created`).
"""

from __future__ import annotations

import contextlib
import functools
import operator
import os
import signal
import sys
import threading
import traceback
from typing import Any, Callable, TypeVar

from ..errors import error_class

T = TypeVar("T")


# Communicators made on one of vlcc's own threads (flusher, prefetcher, capture):
# (thread name, what). Must stay empty (tests check it): MPICH allocates a new
# communicator's context id with an agreement over the ranks that, run on two
# threads of a process at once, left ranks one message apart (a hang).
OFF_THREAD: list[tuple[str, str]] = []


def created(what: str) -> None:
    """Note that a communicator is being made (``what``); one made on a vlcc
    background thread is recorded in :data:`OFF_THREAD`."""
    name = threading.current_thread().name
    if name.startswith("vlcc-"):
        OFF_THREAD.append((name, what))


def private(comm):
    """vlcc's own duplicate of the user's communicator (so its messages never
    match the application's); a communicator without ``Dup`` is used as is."""
    dup = getattr(comm, "Dup", None)
    if dup is None:
        return comm
    created("Dup")
    return dup()


def release(comm) -> None:
    free = getattr(comm, "Free", None)
    if free is not None:
        try:
            free()
        except Exception:  # noqa: BLE001 - freeing at close must not mask the real error
            pass


def threads_ok(comm) -> bool:
    """May a second thread run collectives on a duplicate of ``comm`` while the
    application's thread uses ``comm``? Yes for the serial stand-in (nothing is
    sent) and for mpi4py when MPI was initialized with MPI_THREAD_MULTIPLE
    (mpi4py's default); a communicator may answer itself with a boolean
    ``threads_ok`` attribute (vlcc.torch's adapters: a duplicate is its own
    gloo group); no for anything else. The answer is the same on every rank
    (one thread level per job)."""
    if type(comm).__name__ == "SerialComm":
        return True
    own = getattr(comm, "threads_ok", None)
    if isinstance(own, bool):
        return own
    if not type(comm).__module__.startswith("mpi4py"):
        return False
    from .._mpi import load
    mpi = load()
    return mpi.Query_thread() >= mpi.THREAD_MULTIPLE


def quiet_barrier(comm, poll: float = 0.001) -> None:
    """A barrier that sleeps instead of spinning: a background thread waiting
    for slower ranks must not burn the core the application computes on
    (MPICH's blocking calls busy-poll). Plain barrier where there is no Ibarrier."""
    ib = getattr(comm, "Ibarrier", None)
    if ib is None:
        bar = getattr(comm, "barrier", None)
        if bar is not None:
            bar()
        return
    import time
    req = ib()
    while not req.Test():
        time.sleep(poll)


class QuietComm:
    """A communicator for a background thread: before each collective it
    waits in :func:`quiet_barrier` (asleep) until every rank has arrived, so
    a rank that is ahead never spins inside MPI while its application
    computes; the collective itself then completes at once. Everything
    else is the wrapped communicator's."""

    def __init__(self, comm):
        self.inner = comm

    rank = property(lambda self: self.inner.rank)
    size = property(lambda self: self.inner.size)

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def gather(self, obj, root: int = 0):
        quiet_barrier(self.inner)
        return self.inner.gather(obj, root=root)

    def bcast(self, obj, root: int = 0):
        quiet_barrier(self.inner)
        return self.inner.bcast(obj, root=root)

    def allgather(self, obj):
        quiet_barrier(self.inner)
        return self.inner.allgather(obj)

    def Allreduce(self, sendbuf, recvbuf, op):      # noqa: N802 - mpi4py's name
        quiet_barrier(self.inner)
        return self.inner.Allreduce(sendbuf, recvbuf, op)


def _is_mpi(comm) -> bool:
    return type(getattr(comm, "inner", comm)).__module__.startswith("mpi4py")


_I64 = (-(1 << 63), (1 << 63) - 1)


def _mpi_reduce(comm, value, name: str):
    """``value`` (an int, or a tuple of ints reduced elementwise) reduced over
    an mpi4py communicator by ``MPI_Allreduce`` of 64-bit words. "min"/"max"
    take int64 values; "bor" any non-negative int: one word, and only when
    some rank's value is wider, a second reduction of as many words as the
    widest needs."""
    import numpy as np
    from .._mpi import load
    mpi = load()
    op = {"min": mpi.MIN, "max": mpi.MAX, "bor": mpi.BOR}[name]
    if name != "bor":
        vals = list(value) if isinstance(value, tuple) else [value]
        out = np.empty(len(vals), np.int64)
        comm.Allreduce(np.array(vals, np.int64), out, op)
        res = tuple(int(x) for x in out)
        return res if isinstance(value, tuple) else res[0]
    v = int(value)
    words = max(1, (v.bit_length() + 62) // 63)       # 63 bits per word, the top one: "wider"
    first = np.array([(v & ((1 << 63) - 1)) | ((words > 1) << 63)], np.uint64)
    out = np.empty(1, np.uint64)
    comm.Allreduce(first, out, op)
    if not int(out[0]) >> 63:
        return int(out[0])
    n = np.empty(1, np.int64)
    comm.Allreduce(np.array([words], np.int64), n, mpi.MAX)
    mine = np.array([(v >> (63 * i)) & ((1 << 63) - 1) for i in range(int(n[0]))], np.uint64)
    got = np.empty_like(mine)
    comm.Allreduce(mine, got, op)
    return sum(int(w) << (63 * i) for i, w in enumerate(got))


def _reduce(comm, value, name: str):
    if _is_mpi(comm):
        return _comm(comm, lambda: _mpi_reduce(comm, value, name))
    fn = {"min": min, "max": max, "bor": operator.or_}[name]
    return _comm(comm, lambda: comm.allreduce(value, op=fn))


# SIGINT (KeyboardInterrupt) on one rank. Python raises it at whatever line
# the main thread is running; inside vlcc's collective code that leaves the
# ranks out of step: an interrupted rank that skips a nested collective (a
# node's gather inside the write of an agreed local part) or leaves a
# collective early makes the others wait forever (a hang seen 1 in ~30 runs of
# tests/comm/test_sigint.py). So while the main thread is inside a collective of
# this module, vlcc's SIGINT handler only notes the signal; the outermost
# collective's local part then fails with it on that rank (the agreement
# carries it to every rank, all raise together), or, if it came during the
# MPI part, it is raised as the collective returns: between collectives,
# where ``interrupted`` ends the job (MPI_Abort) if it leaves a Checkpointer
# with-block unagreed. Outside collectives the handler raises at once, as
# Python's own does. A handler the application installed is left alone.
_AGREED = "_vlcc_agreed"
_MAIN = threading.main_thread()
_SIG = {"depth": 0, "runs": 0, "deferred": False}
_WRAPPER_CODE = None      # the code object of _collective's wrappers (one for all)


def _on_sigint(signum, frame):
    if _SIG["depth"] > 0:
        _SIG["deferred"] = True      # raised at the next point where the ranks agree
        return
    raise KeyboardInterrupt


def _collective(fn: Callable[..., T]) -> Callable[..., T]:
    """Mark a public collective of this module: on the main thread, SIGINT is
    deferred while it (and what it calls) runs (see above)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if threading.current_thread() is not _MAIN:
            return fn(*args, **kwargs)
        if _SIG["depth"] == 0 and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, _on_sigint)   # behaves as Python's outside collectives
        _SIG["depth"] += 1
        try:
            out = fn(*args, **kwargs)
        finally:
            _SIG["depth"] -= 1
        if _SIG["depth"] == 0 and _SIG["deferred"]:
            _SIG["deferred"] = False
            raise KeyboardInterrupt("SIGINT during a collective")
        return out
    global _WRAPPER_CODE
    _WRAPPER_CODE = wrapper.__code__
    return wrapper


def _take_deferred() -> KeyboardInterrupt | None:
    """The interrupt noted before the end of an outermost local part (one not
    inside another collective's local part: every rank is at the same
    agreement), on the main thread."""
    if _SIG["deferred"] and _SIG["runs"] == 0 and threading.current_thread() is _MAIN:
        _SIG["deferred"] = False
        exc = KeyboardInterrupt("SIGINT (raised where every rank learns of it)")
        setattr(exc, _AGREED, True)
        return exc
    return None


def abort_job(comm, why: str) -> None:
    """End every rank of an MPI job now (MPI_Abort, status 130 as for SIGINT);
    nothing on one process or without MPI."""
    if not _is_mpi(comm) or comm.size <= 1:
        return
    sys.stderr.write(f"[rank {comm.rank}] vlcc: {why}: ending the job (MPI_Abort) so that no "
                     f"rank waits for this one forever\n")
    sys.stderr.flush()
    # the launcher forwards this rank's output through a pipe that MPI_Abort's
    # tear-down races with: give it a moment, or the only line saying why the
    # job ended is lost (seen in 4 of 60 runs)
    import time
    time.sleep(0.25)
    from .._mpi import load
    load().COMM_WORLD.Abort(130)


def interrupted(comm, exc: BaseException | None) -> None:
    """Call where a KeyboardInterrupt leaves vlcc's collective code (Checkpointer
    ``__exit__``): one the agreement did not carry to the other ranks ends the job."""
    if isinstance(exc, KeyboardInterrupt) and not getattr(exc, _AGREED, False):
        abort_job(comm, "interrupted (SIGINT) between collectives")


def _comm(comm, call: Callable[[], T]) -> T:
    """The MPI part of a collective: an interrupt here (an application's own
    SIGINT handler, or a thread other than the main one) leaves the ranks out of step."""
    try:
        return call()
    except KeyboardInterrupt:
        abort_job(comm, "interrupted (SIGINT) inside a collective")
        raise


def _run(fn: Callable[[], T]) -> tuple[tuple, BaseException | None]:
    main = threading.current_thread() is _MAIN
    if main:
        _SIG["runs"] += 1
    try:
        res, exc = ("ok", fn()), None
    except Exception as exc_:  # noqa: BLE001 - every failure must reach the other ranks
        res, exc = ("err", type(exc_).__name__, str(exc_) or traceback.format_exc(limit=1)), exc_
    except BaseException as exc_:  # KeyboardInterrupt/SystemExit: tell the others, then re-raise
        try:
            setattr(exc_, _AGREED, True)     # the agreement carries it to every rank
        except AttributeError:
            pass
        res, exc = ("err", "CollectiveError", f"{type(exc_).__name__} on this rank"), exc_
    finally:
        if main:
            _SIG["runs"] -= 1
    late = _take_deferred()
    if late is not None:
        return ("err", "CollectiveError", "KeyboardInterrupt on this rank"), late
    return res, exc


def _raise(comm, out: tuple, own: BaseException | None):
    if out[0] == "ok":
        return out[1]
    if own is not None:
        raise own
    _, rank, cls, msg = out
    exc_cls = error_class(cls)
    prefix = "" if comm.size == 1 else f"rank {rank}: "
    if msg.startswith(prefix):     # the failing rank named itself already
        prefix = ""
    if exc_cls.__name__ == cls:
        raise exc_cls(f"{prefix}{msg}")
    raise exc_cls(f"{prefix}{cls}: {msg}")


# -- fault injection: a test hook, inert unless a test arms it ------------------------
_HERE = os.path.abspath(__file__)
_VLCC = os.path.dirname(os.path.dirname(_HERE))
_FORWARDS: set = set()


def forwards(fn):
    """Mark ``fn`` as a pass-through to a protocol function (``fn(op, comm,
    local)``): the call site :class:`Fault` names is the line that called
    ``fn``, not the line inside it."""
    _FORWARDS.add(fn.__code__)
    return fn


class Fault:
    """Make the local part of one protocol call fail on one rank, as if the
    caller's own code had raised at its end (tests/comm/test_collectives.py sweeps
    every call site of commit/, restore/ and checkpointer.py with it). The
    local part runs first, so collectives nested in it (a node's) are
    entered by every rank as without the fault: each is a site of its own.

    A call site is ``(path relative to vlcc/, line)`` of the call of a
    protocol function (the first frame outside this module and outside
    :func:`forwards` functions; protocol functions calling each other count
    once). ``armed(site, rank, nth)``: the ``nth`` call from ``site`` raises
    ``exc`` in its local part on the rank whose rank in that call's
    communicator is ``rank`` (``from_root``/``root_only`` run their local part
    on rank 0 only). ``recording()``: ``calls`` lists ``(site, function)``
    of every call, in order. Inert (one attribute test per call) otherwise."""

    def __init__(self):
        self.active = False
        self.calls: list | None = None
        self.fired = 0
        self._target = None
        self._seen = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def recording(self):
        self.calls, self.active = [], True
        try:
            yield self.calls
        finally:
            self.active, self.calls = False, None

    @contextlib.contextmanager
    def armed(self, site: tuple, rank: int, nth: int = 1, exc: BaseException | None = None):
        self._target = (tuple(site), int(rank), int(nth), exc)
        self._seen = self.fired = 0
        self.calls, self.active = [], True
        try:
            yield self
        finally:
            self.active, self._target, self.calls = False, None, None

    def _hook(self, comm, name: str, local: Callable):
        caller = sys._getframe(3)    # _hook < _local < the protocol function < its caller
        while caller.f_code is _WRAPPER_CODE:        # (_collective's wrapper between them)
            caller = caller.f_back
        if caller.f_code.co_filename == _HERE:      # nested: counted at the outer call
            return local
        while caller.f_code in _FORWARDS and caller.f_back is not None:
            caller = caller.f_back
        path = os.path.abspath(caller.f_code.co_filename)
        site = (os.path.relpath(path, _VLCC), caller.f_lineno)
        with self._lock:
            if self.calls is not None:
                self.calls.append((site, name))
            if self._target is None or self._target[0] != site or self._target[1] != comm.rank:
                return local
            self._seen += 1
            if self._seen != self._target[2]:
                return local
        exc = self._target[3] or RuntimeError(f"injected fault at {site[0]}:{site[1]} ({name})")

        def failing():
            local()       # its own collectives (a node's, say) run on every rank as usual
            with self._lock:
                self.fired += 1
            raise exc
        return failing


FAULT = Fault()


def _local(comm, name: str, local: Callable) -> Callable:
    return local if not FAULT.active else FAULT._hook(comm, name, local)


@_collective
def gather_decide(comm, local: Callable[[], Any], decide: Callable[[list], T]) -> T:
    """Run ``local`` on every rank, gather the results on rank 0, run ``decide``
    there on the list of results (index = rank) and broadcast its return value.

    If ``local`` fails on any rank, or ``decide`` fails, every rank raises: the
    failing rank its own exception, the others the same class with the message
    prefixed by the failing rank."""
    payload, own = _run(_local(comm, "gather_decide", local))
    gathered = _comm(comm, lambda: comm.gather(payload, root=0))
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
    out = _comm(comm, lambda: comm.bcast(out, root=0))
    if out[0] == "err" and comm.rank != out[1]:
        own = None  # raise the failing rank's error, not a local side effect
    return _raise(comm, out, own)


@_collective
def agree(comm, local: Callable[[], T]) -> T:
    """Run ``local`` on every rank; if it fails anywhere, raise on all ranks."""
    payload, own = _run(_local(comm, "agree", local))
    status = None if payload[0] == "ok" else (payload[1], payload[2])
    statuses = _comm(comm, lambda: comm.allgather(status))
    for r, s in enumerate(statuses):
        if s is not None:
            if comm.rank == r:
                raise own  # type: ignore[misc]
            return _raise(comm, ("err", r, s[0], s[1]), None)
    return payload[1]


@_collective
def root_only(comm, fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0 only and broadcast its result (or its error) to all."""
    fn = _local(comm, "root_only", fn)
    return gather_decide(comm, lambda: None, lambda _results: fn())


@_collective
def from_root(comm, fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0 and broadcast its result (or its error): one
    bcast, O(log P) deep (``root_only`` also lets every rank fail first)."""
    fn = _local(comm, "from_root", fn)
    payload, own = _run(fn) if comm.rank == 0 else (None, None)
    out = _comm(comm, lambda: comm.bcast(payload, root=0))
    if out[0] == "err":
        if comm.rank == 0:
            raise own  # type: ignore[misc]
        return _raise(comm, ("err", 0, out[1], out[2]), None)
    return out[1]


@_collective
def allgather(comm, local: Callable[[], T]) -> list[T]:
    """Run ``local`` on every rank and allgather the results; if it failed on
    any rank, raise on every rank (the contract of ``agree``)."""
    payload, own = _run(_local(comm, "allgather", local))
    gathered = _comm(comm, lambda: comm.allgather(payload))
    for r, p in enumerate(gathered):
        if p[0] == "err":
            if comm.rank == r:
                raise own  # type: ignore[misc]
            return _raise(comm, ("err", r, p[1], p[2]), None)
    return [p[1] for p in gathered]


@_collective
def all_true(comm, local: Callable[[], bool]) -> bool:
    """Collective AND of ``local()`` (an exception anywhere is raised everywhere)."""
    local = _local(comm, "all_true", local)
    ok = agree(comm, lambda: bool(local()))
    return bool(_reduce(comm, int(ok), "min"))


@_collective
def any_bits(comm, bits: int | Callable[[], int]) -> int:
    """Collective OR of an integer bit set: one fixed-size reduction, O(log P)
    deep (e.g. "which leaves differ from rank 0's" for replication).
    ``bits`` may be a function computing it: an exception there is raised on
    every rank (a flag bit in the same reduction; a second collective, only
    then, says which rank failed and why)."""
    def nonneg():
        v = int(bits() if callable(bits) else bits)
        if v < 0:
            raise ValueError(f"any_bits: a bit set is a non-negative int, got {v}")
        return v
    value, own = _flagged(_local(comm, "any_bits", nonneg))
    out = int(_reduce(comm, (value << 1) | (own is not None), "bor"))
    return _unflag(comm, out & 1, own, out >> 1)


@_collective
def max_int(comm, value: int | Callable[[], int]) -> int:
    """Collective maximum of an integer: one reduction, O(log P) deep (e.g.
    "the signal any rank received" for slurm/preemption.py); ``value`` may be
    a function, its exception raised on every rank (as :func:`any_bits`)."""
    def int64():
        v = int(value() if callable(value) else value)
        if not _I64[0] <= v <= _I64[1]:
            raise ValueError(f"max_int: {v} does not fit in 64 bits")
        return v
    v, own = _flagged(_local(comm, "max_int", int64))
    failed, out = _reduce(comm, (int(own is not None), v), "max")
    return _unflag(comm, failed, own, out)


def _flagged(local: Callable[[], int]) -> tuple[int, BaseException | None]:
    """``local()`` as an int, or 0 and the exception it raised."""
    payload, own = _run(lambda: int(local()))
    return (payload[1] if own is None else 0), own


def _unflag(comm, failed, own: BaseException | None, out) -> int:
    if failed:      # every rank knows that one failed: one more collective says which and why
        agree(comm, lambda: _throw(own))
    return int(out)


def _throw(exc: BaseException | None) -> None:
    if exc is not None:
        raise exc


_PIECE = 1 << 30     # bytes per point-to-point message (counts stay below 2**31)
_TAG = 0x7C1C


@_collective
def exchange(comm, local: Callable[[], dict], clock: Callable[[str], None] | None = None) -> dict:
    """Sparse all-to-all of byte buffers, error-agreeing: ``local()`` returns
    ``{destination rank: [uint8 arrays]}``; every rank gets back
    ``{source rank: [uint8 arrays]}`` in the order they were sent. One
    allgather of the sizes (a failing ``local`` raises on every rank and
    nothing is sent), then point-to-point messages on ``comm`` (used for the
    node-local tier's partner copies and parity, engine/resilience/).
    ``clock(phase)``: charged "read" once ``local`` is done, "send" at the end."""
    import numpy as np
    local = _local(comm, "exchange", local)
    held: dict = {}

    def sizes():
        got = local() or {}
        for d, bufs in got.items():
            if not 0 <= int(d) < comm.size:
                raise ValueError(f"exchange: destination rank {d} of {comm.size}")
            held[int(d)] = [np.ascontiguousarray(b).view(np.uint8).reshape(-1) for b in bufs]
        return {d: [b.nbytes for b in bufs] for d, bufs in held.items()}
    plan = allgather(comm, sizes)
    if clock is not None:
        clock("read")          # (``local`` made the buffers: e.g. read them from files)
    out: dict = {}
    if comm.rank in held:
        out[comm.rank] = held.pop(comm.rank)
    if not held and not any(comm.rank in p for r, p in enumerate(plan) if r != comm.rank):
        if clock is not None:
            clock("send")
        return out
    inner = getattr(comm, "inner", comm)          # a QuietComm: its MPI communicator
    if not hasattr(inner, "Isend"):
        raise ValueError("exchange: point-to-point messages need an mpi4py communicator")
    incoming = {src: p[comm.rank] for src, p in enumerate(plan)
                if src != comm.rank and comm.rank in p}
    # every rank has passed the allgather above (asleep, on a QuietComm): the
    # transfers progress at once
    _transfer(inner, incoming, held, out)
    if clock is not None:
        clock("send")
    return out


def _transfer(inner, incoming: dict, held: dict, out: dict) -> None:
    """Point-to-point: receive ``incoming[src]`` (byte counts) from each
    ``src`` into new buffers ``out[src]``, send ``held[dst]`` to each ``dst``.
    Polling with sleeps here cost ~10x (MPICH moves a large message in
    pieces, one per progress call); a blocking Waitall spins, taking the
    core from co-located ranks: test and yield."""
    import numpy as np
    reqs = []
    for src, ns in incoming.items():
        bufs = out[src] = [np.empty(n, np.uint8) for n in ns]
        for b in bufs:
            for lo in range(0, b.nbytes, _PIECE):
                reqs.append(inner.Irecv(b[lo:lo + _PIECE], source=src, tag=_TAG))
    for dst, bufs in held.items():
        for b in bufs:
            for lo in range(0, b.nbytes, _PIECE):
                reqs.append(inner.Isend(b[lo:lo + _PIECE], dest=dst, tag=_TAG))
    if reqs:
        testall = _load_mpi().Request.Testall
        while not testall(reqs):
            os.sched_yield()


@_collective
def exchange_planned(comm, local: Callable[[], dict], sizes: dict,
                     clock: Callable[[str], None] | None = None) -> tuple[dict, Exception | None]:
    """``exchange`` without its collective, when every rank knows every
    message in advance: ``sizes[(src, dst)]`` lists the byte counts rank
    ``src`` sends to ``dst``, in order (the same dict on every rank).
    ``local()`` returns ``{dst: [uint8 arrays]}`` matching them. A failing
    ``local`` does not stop the messages: this rank sends zeros of the
    agreed sizes and returns the error, which the caller must carry into its
    next collective (so no rank waits for a message that never comes).
    Returns ``({src: [arrays]}, error or None)``."""
    import numpy as np
    local = _local(comm, "exchange_planned", local)
    me = comm.rank
    err = None
    try:
        held = {int(d): [np.ascontiguousarray(b).view(np.uint8).reshape(-1) for b in bufs]
                for d, bufs in (local() or {}).items()}
        for (src, dst), ns in sizes.items():
            if src == me and [b.nbytes for b in held.get(dst, [])] != list(ns):
                raise ValueError(f"exchange: rank {me} would send {[b.nbytes for b in held.get(dst, [])]} "
                                 f"bytes to rank {dst}, {list(ns)} agreed")
    except Exception as exc:   # noqa: BLE001 - returned, for the caller's next collective
        err = exc
        held = {dst: [np.zeros(n, np.uint8) for n in ns] for (src, dst), ns in sizes.items()
                if src == me}
    if clock is not None:
        clock("read")
    out: dict = {}
    if me in held:
        out[me] = held.pop(me)
    _transfer(getattr(comm, "inner", comm),
              {src: ns for (src, dst), ns in sizes.items() if dst == me and src != me and ns},
              held, out)
    if clock is not None:
        clock("send")
    return out, err


def _load_mpi():
    from .._mpi import load
    return load()

__all__ = ["gather_decide", "agree", "root_only", "from_root", "allgather", "all_true", "any_bits",
           "max_int", "abort_job", "interrupted", "Fault", "FAULT", "forwards",
           "private", "release", "threads_ok", "quiet_barrier", "QuietComm", "exchange",
           "exchange_planned", "created", "OFF_THREAD"]
