"""Helper for tests/redundancy/test_dedup.py (runs under mpiexec -n N python -m mpi4py).

    dedup_kpct.py REPO write K SEED   on N ranks: v1 = base field, v2 = K % of
        its chunks changed; tags v1/v2; prints JSON {"v1":..., "v2":..., "changed": n}
    dedup_kpct.py REPO read K SEED    on M ranks: restore v1 and v2 (N→M),
        compare bit-exact, then commit v3 = v2's content from M ranks; prints
        JSON {"v3": ...}

The global array is 1-D float64 of G * CHUNK bytes (G divisible by 1, 2 and
3); it is stored on the global tile grid (vlcc/layout/tiles.py: NT tiles of
TILE elements), and K % of its tiles change between v1 and v2."""

import json
import sys

import numpy as np
from mpi4py import MPI

import vlcc
from vlcc.layout.tiles import tile_shape

CHUNK = 4096
PER = CHUNK // 8
G = 96  # chunk sizes in the global array
(TILE,) = tile_shape((G * PER,), 8, CHUNK)   # elements per tile (3072 bytes: 96·512 / 2⁷)
NT = -(-G * PER // TILE)                     # tiles


def fields(k: float, seed: int):
    base = np.random.default_rng(seed).random(G * PER)
    v2 = base.copy()
    nchg = int(round(NT * k / 100.0))
    which = np.random.default_rng(seed + 1).choice(NT, size=nchg, replace=False)
    for c in which:
        v2[c * TILE:(c + 1) * TILE] += 1.0
    return base, v2, nchg


def block(comm):
    n = G // comm.size * PER
    return n * comm.rank, n


def main():
    repo, mode, k, seed = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    comm = MPI.COMM_WORLD
    base, v2f, nchg = fields(k, seed)
    off, n = block(comm)
    u = np.empty(n)
    with vlcc.Checkpointer(repo, comm, chunk_size=CHUNK) as ck:
        ck.register("u", u, global_shape=(G * PER,), offset=(off,))
        if mode == "write":
            u[:] = base[off:off + n]
            a = ck.checkpoint(step=1)
            ck.tag("v1", a)
            u[:] = v2f[off:off + n]
            b = ck.checkpoint(step=2)
            ck.tag("v2", b)
            out = {"v1": a.id, "v2": b.id, "changed": nchg}
        else:
            ck.restore("tag:v1")
            assert np.array_equal(u, base[off:off + n]), f"rank {comm.rank}: v1 differs"
            ck.restore("tag:v2")
            assert np.array_equal(u, v2f[off:off + n]), f"rank {comm.rank}: v2 differs"
            c = ck.checkpoint(step=3)
            out = {"v3": c.id}
    if comm.rank == 0:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
