"""Preemption: a signal before the kill → checkpoint at the next safe point → requeue.

Saving inside a signal handler is unsafe (the handler may run in the middle of an
MPI call or of a checkpoint), so the handlers only record the signal. The
application polls :meth:`Preemption.should_stop` at a step boundary; it is
collective (one allreduce of one integer on the Checkpointer's communicator)
so every rank takes the same branch even when the signal reached only some
ranks, or reached them at different steps.
"""

from __future__ import annotations

import signal as _signal
import sys
import threading
from typing import Any, Iterable

from ..comm import protocol
from ..errors import VlccError
from .env import requeue_job


class RequeueExit(SystemExit):
    """Raised on every rank by :meth:`Preemption.checkpoint_and_requeue` once the
    checkpoint is durable. As a :class:`SystemExit` it unwinds ``with`` blocks
    (closing the Checkpointer collectively) and ends the process with ``code``:

    * ``0`` — rank 0 requeued the job with ``scontrol requeue $SLURM_JOB_ID``, or
      the job is already ending (``scancel``, or killed at its time limit without a
      warning signal): then it is not requeued, a cancel stays a cancel;
    * ``RequeueExit.EXIT_CODE`` (75, ``EX_TEMPFAIL``) — the job could not be
      requeued from inside (no ``scontrol``, e.g. in a container; not in a
      SLURM job; scontrol refused): the batch script, which runs outside the
      container, should requeue it when it sees 75 (``vlcc_requeue`` in
      slurm/examples/forward.sh).

    ``version`` is the checkpointed version, ``requeued`` whether scontrol did
    it, ``reason`` why not."""

    EXIT_CODE = 75

    def __init__(self, code: int, version: Any = None, requeued: bool = False, reason: str = ""):
        super().__init__(code)
        self.version, self.requeued, self.reason = version, requeued, reason


def _signum(sig: str | int) -> int:
    if isinstance(sig, int):
        return int(_signal.Signals(sig))
    name = str(sig).upper()
    name = name if name.startswith("SIG") else "SIG" + name
    try:
        return int(_signal.Signals[name])
    except KeyError:
        raise VlccError(f"Preemption: unknown signal {sig!r} (use names such as 'USR1', 'TERM')") from None


class Preemption:
    """Catch the signals SLURM sends before it kills or preempts a job.

    ``signals``: names (``"USR1"``, ``"SIGTERM"``) or numbers. Submit with
    ``#SBATCH --signal=B:USR1@120`` and forward the signal from the batch
    shell to ``mpiexec`` (see slurm/examples/preemptible.sbatch); clusters that
    only send SIGTERM at the time limit or on preemption are covered by "TERM".
    Install from the main thread (Python's rule for signal handlers). Also a
    context manager that restores the previous handlers."""

    def __init__(self, ck, signals: Iterable[str | int] = ("USR1", "TERM")):
        if threading.current_thread() is not threading.main_thread():
            raise VlccError("Preemption must be created in the main thread "
                            "(Python only delivers signals there)")
        self.ck = ck
        # The Checkpointer's own duplicate of the user's communicator: our
        # allreduce never interleaves with the application's messages.
        self.comm = ck.comm
        self.signals = tuple(dict.fromkeys(_signum(s) for s in signals))
        self.received: list[int] = []      # this rank's signals, in arrival order
        self.stop_signal: int | None = None  # agreed by should_stop()
        self._previous = {}
        self._exiting = False
        for s in self.signals:
            self._previous[s] = _signal.signal(s, self._handler)

    def _handler(self, signum, frame) -> None:
        # Only a flag: no I/O, no MPI, no allocation of note.
        self.received.append(signum)

    @property
    def requested(self) -> bool:
        """This rank has received a signal (local; use :meth:`should_stop` to decide)."""
        return bool(self.received)

    def should_stop(self) -> bool:
        """Collective: True on every rank if any rank has received one of the
        signals. Call it at a safe point (a step boundary), on all ranks."""
        mine = self.received[0] if self.received else 0
        got = protocol.max_int(self.comm, mine)
        if got and self.stop_signal is None:
            self.stop_signal = got
        return bool(got)

    @property
    def signal_name(self) -> str | None:
        return _signal.Signals(self.stop_signal).name if self.stop_signal else None

    def checkpoint_and_requeue(self, step: int | None, message: str = "preempted",
                               attrs: dict | None = None) -> None:
        """Collective. Checkpoint, wait until the version is durable, requeue the
        job from rank 0 and end every rank by raising :class:`RequeueExit` (code 0,
        or ``RequeueExit.EXIT_CODE`` when the job could not be requeued from here).

        The version's attrs record ``preempted_by`` (the signal name); its lineage
        records job id, array ids and restart count as every version does."""
        ck = self.ck
        attrs = dict(attrs or {})
        if self.signal_name:
            attrs.setdefault("preempted_by", self.signal_name)
        v = ck.checkpoint(step=step, message=message, attrs=attrs)
        ck.wait()
        # Nobody requeues before every rank is past the checkpoint (requeue makes
        # SLURM signal, then kill, the whole job): root_only gathers from every
        # rank before rank 0 runs it, and a failure there is raised on all ranks.
        outcome, reason = protocol.root_only(self.comm, requeue_job)
        ok = outcome == "requeued"
        if self.comm.rank == 0 and outcome == "ending":
            print(f"vlcc.slurm: checkpointed {v.id} at step {step}; {reason}",
                  file=sys.stderr, flush=True)
        elif self.comm.rank == 0 and not ok:
            print(f"vlcc.slurm: checkpointed {v.id} at step {step} but could not requeue: {reason}; "
                  f"exiting with {RequeueExit.EXIT_CODE} so the batch script can requeue",
                  file=sys.stderr, flush=True)
        # SLURM now sends SIGTERM to the whole job: from here on the signals are
        # ignored (close() no longer restores the defaults) so that every rank
        # finishes its clean exit with 0 instead of dying of the requeue's TERM.
        self._exiting = True
        for s in self.signals:
            _signal.signal(s, _signal.SIG_IGN)
        code = RequeueExit.EXIT_CODE if outcome == "failed" else 0
        raise RequeueExit(code, version=v, requeued=ok, reason=reason)

    def close(self) -> None:
        """Restore the handlers that were installed before (not collective);
        after :meth:`checkpoint_and_requeue` the signals stay ignored."""
        if self._exiting:
            self._previous = {}
            return
        for s, h in self._previous.items():
            try:
                _signal.signal(s, h if h is not None else _signal.SIG_DFL)
            except (ValueError, TypeError):
                pass
        self._previous = {}

    def __enter__(self) -> "Preemption":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
