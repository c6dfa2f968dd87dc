"""An uncaught exception on one rank ends the whole MPI job (scripts: benchmarks,
examples). Without it, the failing rank exits while the others wait forever in a
collective it never enters (``bench_io.py --dir missing``: rank 1 spinning in a
bcast). The same as running a script with ``python -m mpi4py script.py``, but
the script does it itself, so ``mpiexec -n 2 python script.py`` is safe."""

from __future__ import annotations

import sys


def abort_on_error() -> None:
    """Install once, at the start of a script's ``main``: an uncaught exception
    is printed (rank prefixed), then ``MPI.COMM_WORLD.Abort(1)`` ends every rank
    with a non-zero status. Without MPI loaded (a serial run) it only prints."""
    previous = sys.excepthook

    def hook(kind, exc, tb):
        mpi = sys.modules.get("mpi4py.MPI")
        rank = None
        if mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized():
            rank = mpi.COMM_WORLD.Get_rank()
            if mpi.COMM_WORLD.Get_size() > 1:
                sys.stderr.write(f"[rank {rank}] uncaught {kind.__name__}: ending the job "
                                 f"(MPI_Abort) so no other rank waits for this one\n")
        previous(kind, exc, tb)
        sys.stderr.flush()
        sys.stdout.flush()
        if rank is not None and mpi.COMM_WORLD.Get_size() > 1:
            mpi.COMM_WORLD.Abort(1)

    sys.excepthook = hook
