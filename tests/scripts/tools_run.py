"""A tiny solver for the tools tests: a distributed (NY x 8) field, the step
and a config as values. Restart-aware: restores the newest version of its
branch and continues from the stored step. Steps 1..3; from step PERTURB on
(0: never) element (NY-3, 5) gets +1e-3 (a different run, same shapes).

    tools_run.py PATH NY PERTURB
"""
import sys

import numpy as np
import vlcc
from mpi4py import MPI

comm = MPI.COMM_WORLD
path, ny, perturb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
nx = 8
rows = np.array_split(np.arange(ny), comm.size)[comm.rank]
u = np.zeros((len(rows), nx))
state = {"step": 0}
with vlcc.Checkpointer(path, comm=comm) as ck:
    ck.register("heat/u", u, global_shape=(ny, nx), offset=(rows[0] if len(rows) else 0, 0))
    ck.register("heat/step", vlcc.ValueProvider(get=lambda: state["step"],
                                                set=lambda s: state.update(step=s)))
    ck.register("cfg", vlcc.ValueProvider(get=lambda: {"dt": 0.1, "nx": nx}, set=lambda c: None))
    if ck.log():
        ck.restore()
    for step in range(state["step"] + 1, 4):
        state["step"] = step
        u[:] = np.arange(ny * nx, dtype=float).reshape(ny, nx)[rows] * step
        if perturb and step >= perturb and ny - 3 in rows:
            u[ny - 3 - rows[0], 5] += 1e-3
        ck.checkpoint(step=step, message=f"step {step}")
