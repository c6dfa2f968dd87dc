"""Helper for tests/layout/test_tiled_chunks.py (runs under mpiexec -n K python -m mpi4py).

    nm_dedup.py REPO write SPLIT     checkpoint the fields, split over the job's ranks
    nm_dedup.py REPO restart SPLIT   restore the newest version (N→M), check it
                                     bit-exact, checkpoint the unchanged data again

SPLIT is ``rows`` (axis 0), ``cols`` (last axis) or ``blocks`` (a 2-D grid of
ranks, MPI.Compute_dims). The fields are functions of the global index; the
chunk size is small so that each block holds many tiles. Rank 0 prints one
JSON line {"version": id}."""

import json
import sys

import numpy as np
from mpi4py import MPI

import vlcc

CHUNK = 4096
FIELDS = {"u": ((2048, 64), "float64"), "w": ((512, 16, 16), "float32")}


def global_data(shape, dtype):
    i = np.arange(int(np.prod(shape)), dtype=np.int64)
    return (np.sin(i * 0.013) * 1e3 + i).astype(dtype).reshape(shape)


def split_cuts(n, k):
    q, r = divmod(n, k)
    return [i * q + min(i, r) for i in range(k + 1)]


def box(shape, split, comm):
    """This rank's (offset, shape) of a global array of ``shape``."""
    nd = len(shape)
    grid = [1] * nd
    if split == "rows":
        grid[0] = comm.size
    elif split == "cols":
        grid[-1] = comm.size
    else:
        grid[0], grid[1] = MPI.Compute_dims(comm.size, 2)
    cell = np.unravel_index(comm.rank, grid)
    off, shp = [], []
    for n, k, c in zip(shape, grid, cell):
        cuts = split_cuts(n, k)
        off.append(cuts[c])
        shp.append(cuts[c + 1] - cuts[c])
    return tuple(off), tuple(shp)


def main():
    repo, mode, split = sys.argv[1:4]
    comm = MPI.COMM_WORLD
    arrays = {}
    with vlcc.Checkpointer(repo, comm, chunk_size=CHUNK) as ck:
        for name, (shape, dtype) in FIELDS.items():
            off, shp = box(shape, split, comm)
            a = np.zeros(shp, dtype)
            if mode == "write":
                a[...] = global_data(shape, dtype)[tuple(slice(o, o + n) for o, n in zip(off, shp))]
            arrays[name] = (a, off)
            ck.register(name, a, global_shape=shape, offset=off)
        if mode == "restart":
            ck.restore()
            for name, (a, off) in arrays.items():
                shape, dtype = FIELDS[name]
                want = global_data(shape, dtype)[tuple(slice(o, o + n) for o, n in zip(off, a.shape))]
                assert a.tobytes() == want.tobytes(), f"rank {comm.rank}: {name} differs"
        v = ck.checkpoint(step=1 if mode == "write" else 2)
    if comm.rank == 0:
        print(json.dumps({"version": v.id}), flush=True)


if __name__ == "__main__":
    main()
