"""A serial solver checkpointed with vlcc, no MPI needed (run it with plain `python`).

    python examples/serial/solver.py runs/serial      # run twice: the second run resumes

With comm=None outside mpiexec, vlcc runs on a one-rank stand-in (vlcc.comm.serial) and
loads no MPI library; the repository has the same format as an MPI run's: `vlcc log
runs/serial` inspects it, and an MPI program that registers `solver/u` with its own
decomposition restores it on any number of ranks (N->M).
"""

import sys

import numpy as np

import vlcc

repo = sys.argv[1] if len(sys.argv) > 1 else "runs/serial"
u = np.zeros((64, 64))
state = {"step": 0}

with vlcc.Checkpointer(repo) as ck:                    # comm=None: serial, no MPI
    ck.register("solver/u", u, global_shape=u.shape, offset=(0, 0))
    ck.register("solver/step", vlcc.ValueProvider(get=lambda: state["step"],
                                                  set=lambda s: state.update(step=s)))
    if ck.log():
        v = ck.restore()                               # resume from the newest version
        print(f"resumed at step {state['step']} from version {v.id}")
    for step in range(state["step"] + 1, state["step"] + 31):
        u[1:-1, 1:-1] = 0.25 * (u[:-2, 1:-1] + u[2:, 1:-1] + u[1:-1, :-2] + u[1:-1, 2:])
        u[0, :] = 1.0                                  # a hot boundary
        state["step"] = step
        if step % 10 == 0:
            ck.checkpoint(step=step, message="serial solver")
print(f"done at step {state['step']}, mean {u.mean():.6f}, MPI loaded: {'mpi4py.MPI' in sys.modules}")
