"""Helper for tests/layout/test_coalesce.py and tests/state/test_derived.py (runs under
mpiexec -n N python -m mpi4py).

    coalesce_nm.py REPO write    on N ranks: a small 2-D distributed array
        (a few rows per rank: every block is coalesced into the rank's pack),
        200 small per-rank-identical arrays, a value, a large distributed
        array, and a derived float32 copy of the small array; one version.
    coalesce_nm.py REPO read     on M ranks: restore it with another
        decomposition and compare every provider bit-exact with the global
        truth; prints JSON {"ok": true, "version": id}.

Blocks are split along rows with uneven sizes so M ranks' boxes straddle the
N stored (packed) blocks."""

import json
import sys

import numpy as np
from mpi4py import MPI

import vlcc

ROWS, COLS = 23, 7          # small: 1288 bytes in all
BIG = 40_000                # float64: 320 kB, not coalesced
CHUNK = 4096


def rows_of(rank, size):
    cuts = np.linspace(0, ROWS, size + 1).astype(int)
    return int(cuts[rank]), int(cuts[rank + 1] - cuts[rank])


def truth():
    small = np.arange(ROWS * COLS, dtype=np.float64).reshape(ROWS, COLS) * 1.5
    big = np.sin(np.arange(BIG, dtype=np.float64))
    tiny = [np.full(16, i, dtype=np.int32) for i in range(200)]
    return small, big, tiny


def setup(ck, comm):
    small, big, tiny = truth()
    r0, nr = rows_of(comm.rank, comm.size)
    n = BIG // comm.size
    b0 = n * comm.rank
    nb = BIG - b0 if comm.rank == comm.size - 1 else n
    mine = {"small": small[r0:r0 + nr].copy(), "big": big[b0:b0 + nb].copy(),
            "tiny": [t.copy() for t in tiny], "small32": np.zeros((nr, COLS), np.float32),
            "value": {"step": 7}}
    ck.register("small", mine["small"], global_shape=(ROWS, COLS), offset=(r0, 0))
    ck.register("big", mine["big"], global_shape=(BIG,), offset=(b0,))
    for i, t in enumerate(mine["tiny"]):
        ck.register(f"tiny/{i}", t)
    ck.register("meta", vlcc.ValueProvider(get=lambda: mine["value"],
                                           set=lambda v: mine.__setitem__("value", v)))
    ck.register_derived("small32", lambda a: a.astype(np.float32), ["small"],
                        recipe={"op": "astype", "dtype": "float32"}, target=mine["small32"])
    return mine


def main():
    repo, what = sys.argv[1], sys.argv[2]
    comm = MPI.COMM_WORLD
    with vlcc.Checkpointer(repo, comm, chunk_size=CHUNK) as ck:
        mine = setup(ck, comm)
        if what == "write":
            v = ck.checkpoint(step=1)
        else:
            for k in ("small", "big", "small32"):
                mine[k][...] = -1
            for t in mine["tiny"]:
                t[...] = -1
            mine["value"] = None
            v = ck.restore()
            small, big, tiny = truth()
            r0, nr = rows_of(comm.rank, comm.size)
            n = BIG // comm.size
            b0 = n * comm.rank
            assert np.array_equal(mine["small"], small[r0:r0 + nr])
            assert np.array_equal(mine["big"], big[b0:b0 + mine["big"].size])
            assert all(np.array_equal(a, b) for a, b in zip(mine["tiny"], tiny))
            assert np.array_equal(mine["small32"], small[r0:r0 + nr].astype(np.float32))
            assert mine["value"] == {"step": 7}
    if comm.rank == 0:
        print(json.dumps({"ok": True, "version": v.id}))


if __name__ == "__main__":
    main()
