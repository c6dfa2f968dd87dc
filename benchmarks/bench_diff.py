"""vlcc diff and export against their in-memory peers, measured in one run.

    mpiexec -n 2 python benchmarks/bench_diff.py [--mib 64] [--slab-mib 8] [--dir DIR]

Two versions of a distributed float64 array of --mib MiB in total (written on
all ranks; the second differs in one element near the end). Then, on rank 0:

1. diff: ``vlcc.diff`` streaming slabs of --slab-mib MiB vs the peer "read both
   whole arrays with Repository.read, then numpy" (np.abs(a-b), count, argmax):
   time and peak Python heap (tracemalloc, which sees numpy's buffers) of each.
2. export: ``vlcc export`` (slab by slab into one BP5 file) vs reading the
   whole array and writing it with adios2.Stream in one put.

Prints ratios and a final SUMMARY line."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import tracemalloc

import numpy as np
from mpi4py import MPI

import vlcc
from vlcc.tools.export import export


def measure(fn):
    tracemalloc.start()
    t0 = time.perf_counter()
    res = fn()
    dt = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return res, dt, peak


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--slab-mib", type=int, default=8)
    ap.add_argument("--dir", default=None)
    a = ap.parse_args()
    if a.dir is not None and not os.path.isdir(a.dir):   # on every rank: all stop
        ap.error(f"--dir {a.dir}: no such directory")
    comm = MPI.COMM_WORLD
    base = comm.bcast(tempfile.mkdtemp(prefix="bench-diff-", dir=a.dir) if comm.rank == 0 else None)
    nx = 1024
    ny = max(comm.size, a.mib * 2**20 // (8 * nx))
    rows = np.array_split(np.arange(ny), comm.size)[comm.rank]
    rng = np.random.default_rng(comm.rank)
    u = rng.random((len(rows), nx))
    path = os.path.join(base, "run")
    with vlcc.Checkpointer(path, comm=comm) as ck:
        ck.register("u", u, global_shape=(ny, nx), offset=(rows[0], 0))
        ck.checkpoint(step=1)
        if ny - 2 in rows:
            u[ny - 2 - rows[0], 7] += 1.0
        ck.checkpoint(step=2)
    if comm.rank == 0:
        A, B = f"{path}@step:1", f"{path}@step:2"
        slab = a.slab_mib << 20
        vlcc.diff(A, B, slab_bytes=slab)     # warm the page cache for both contenders
        rec, t_vlcc, m_vlcc = measure(lambda: vlcc.diff(A, B, slab_bytes=slab)[0])
        repo = vlcc.Repository(path)

        def peer():
            x, y = repo.read(repo.log()[1], "u"), repo.read(repo.log()[0], "u")
            d = np.abs(x - y)
            n = int(np.count_nonzero(d))
            return n, np.unravel_index(int(np.argmax(d > 0)), d.shape), float(d.max())
        (n, first, mx), t_np, m_np = measure(peer)
        assert rec["differing"] == n == 1 and tuple(rec["first_index"]) == tuple(map(int, first))
        total = ny * nx * 8
        print(f"array {total / 2**20:.0f} MiB on {comm.size} ranks, slab {a.slab_mib} MiB")
        print(f"diff:   vlcc.diff {t_vlcc:.3f} s, peak heap {m_vlcc / 2**20:.1f} MiB | "
              f"read-all+numpy {t_np:.3f} s, peak heap {m_np / 2**20:.1f} MiB | "
              f"time {t_vlcc / t_np:.2f}x, memory {m_vlcc / m_np:.3f}x")

        out1, out2 = os.path.join(base, "e1.bp"), os.path.join(base, "e2.bp")
        _, t_exp, m_exp = measure(lambda: export(B, out1, slab_bytes=slab))

        def peer_export():
            import adios2
            x = repo.read(repo.log()[0], "u")
            with adios2.Stream(out2, "w") as s:
                s.begin_step()
                s.write("u", x, list(x.shape), [0, 0], list(x.shape))
                s.end_step()
        _, t_pe, m_pe = measure(peer_export)
        print(f"export: vlcc export {t_exp:.3f} s, peak heap {m_exp / 2**20:.1f} MiB | "
              f"read-all+adios2 {t_pe:.3f} s, peak heap {m_pe / 2**20:.1f} MiB | "
              f"time {t_exp / t_pe:.2f}x, memory {m_exp / m_pe:.3f}x")
        print(f"SUMMARY bench_diff ranks={comm.size} mib={total >> 20}: diff {t_vlcc / t_np:.2f}x time, "
              f"{m_vlcc / m_np:.3f}x peak memory of read-all+numpy; export {t_exp / t_pe:.2f}x time, "
              f"{m_exp / m_pe:.3f}x peak memory of read-all+adios2")
        shutil.rmtree(base, ignore_errors=True)
    comm.Barrier()


if __name__ == "__main__":
    from vlcc.comm.abort import abort_on_error
    abort_on_error()   # an error on one rank ends every rank (no rank left waiting)
    main()
