"""Coupled example: a Python driver and a C solver library in one process, one checkpoint.

    mpicc -shared -fPIC $(vlcc-config --cflags) solver.c -o libsolver.so $(vlcc-config --libs)
    mpiexec -n 2 python driver.py REPO ./libsolver.so [--restore]

The driver owns a Checkpointer and shares it with libvlcc (``vlcc.capi.attach``); the solver
registers its field ("solver/u") through the C ABI, the driver registers its own providers
("driver/weights", "driver/epoch"). One ``ck.checkpoint()`` captures all three; one
``ck.restore()`` fills all three, on any rank count for the distributed ones.
"""

import argparse
import ctypes

import numpy as np
from mpi4py import MPI

import vlcc
import vlcc.capi


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("repo")
    ap.add_argument("solver")
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--restore", action="store_true", help="restore the newest version and print it")
    a = ap.parse_args()
    comm = MPI.COMM_WORLD
    lib = ctypes.CDLL(a.solver)
    lib.solver_setup.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int64]
    lib.solver_value.restype = ctypes.c_double
    lib.solver_value.argtypes = [ctypes.c_int64]
    lib.solver_nlocal.restype = lib.solver_offset.restype = ctypes.c_int64

    with vlcc.Checkpointer(a.repo, comm=comm) as ck:
        vlcc.capi.attach(ck)
        rc = lib.solver_setup(a.repo.encode(), comm.py2f(), a.n)
        if rc:
            raise SystemExit(f"solver_setup failed: {rc}")
        weights = np.full(4, float(comm.rank + 1))         # per-rank state of the driver
        epoch = {"epoch": 0}
        ck.register("driver/weights", weights)
        ck.register("driver/epoch", vlcc.ValueProvider(get=lambda: epoch["epoch"],
                                                         set=lambda v: epoch.update(epoch=v)))
        if a.restore:
            v = ck.restore()
        else:
            for e in range(3):
                lib.solver_step()
                weights *= 2.0
                epoch["epoch"] = e + 1
            v = ck.checkpoint(step=3, message="driver + solver")
        sol = [lib.solver_value(i) for i in range(lib.solver_nlocal())]
        line = (f"rank {comm.rank}: version {v.id} epoch {epoch['epoch']} weights {weights.tolist()} "
                f"solver offset {lib.solver_offset()} values {sol}")
        lines = comm.gather(line, root=0)        # one writer: no interleaved output
        if comm.rank == 0:
            print("\n".join(lines), flush=True)
        lib.solver_teardown()
        vlcc.capi.detach()


if __name__ == "__main__":
    from vlcc.comm.abort import abort_on_error
    abort_on_error()   # an error on one rank ends every rank (no rank left waiting)
    main()
