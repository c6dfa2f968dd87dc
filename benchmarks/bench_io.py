"""Full-checkpoint throughput of vlcc vs its peers, measured in one run.

    mpiexec -n 2 python benchmarks/bench_io.py [--mib 256] [--repeat 3] [--dir DIR]

Every rank writes/reads --mib MiB. Timings are barrier to barrier (the slowest
rank counts) and the best of --repeat runs. Peers, each on the same arrays:
numpy tofile+fsync / fromfile, a plain ADIOS2 BP5 write (with and without fsync),
h5py (+fsync). Prints a table of GB/s and ratios, then one summary line.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import adios2
import numpy as np
from mpi4py import MPI

import vlcc


def timed(comm, fn, repeat, before=None):
    """Best of ``repeat`` barrier-to-barrier times of ``fn(i)`` (slowest rank);
    ``before()`` runs untimed ahead of each (e.g. dropping the page cache)."""
    best = float("inf")
    for i in range(repeat):
        if before is not None:
            before()
        comm.Barrier()
        t0 = MPI.Wtime()
        fn(i)
        comm.Barrier()
        best = min(best, comm.allreduce(MPI.Wtime() - t0, op=MPI.MAX))
    return best


def fsync_path(path):
    if os.path.isdir(path):
        for root, _d, files in os.walk(path):
            for f in files:
                fd = os.open(os.path.join(root, f), os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)
    else:
        fd = os.open(path, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where to write (default: a temp dir)")
    args = ap.parse_args()
    if args.dir is not None and not os.path.isdir(args.dir):   # on every rank: all stop
        ap.error(f"--dir {args.dir}: no such directory")
    comm = MPI.COMM_WORLD
    rank, size = comm.rank, comm.size
    base = comm.bcast(tempfile.mkdtemp(prefix="vlcc-bench-", dir=args.dir) if rank == 0 else None)
    n = args.mib * (1 << 20) // 8
    rng = np.random.default_rng(rank)
    u = rng.standard_normal(n)
    total = n * 8 * size
    gbs = lambda t: total / t / 1e9
    res = {}

    def np_write(i):
        p = os.path.join(base, f"np{rank}.{i}.bin")
        u.tofile(p)
        fsync_path(p)
    res["numpy tofile+fsync"] = timed(comm, np_write, args.repeat)

    def adios_write(i, sync):
        p = os.path.join(base, f"ad{rank}.{i}{'s' if sync else ''}.bp")
        with adios2.Stream(p, "w") as s:
            s.write("u", u, [n], [0], [n])
        if sync:
            fsync_path(p)
    res["adios2 BP5"] = timed(comm, lambda i: adios_write(i, False), args.repeat)
    res["adios2 BP5+fsync"] = timed(comm, lambda i: adios_write(i, True), args.repeat)

    try:
        import h5py

        def h5_write(i):
            p = os.path.join(base, f"h5{rank}.{i}.h5")
            with h5py.File(p, "w") as f:
                f.create_dataset("u", data=u)
            fsync_path(p)
        res["h5py+fsync"] = timed(comm, h5_write, args.repeat)
    except ImportError:
        pass

    # A full checkpoint: dedup off, and the bytes change between repeats (with
    # dedup on, a repeat of unchanged data would store nothing: bench_dedup's job).
    ck = vlcc.Checkpointer(os.path.join(base, "repo"), comm=comm, dedup=False)
    ck.register("u", u, global_shape=(n * size,), offset=(n * rank,))
    versions = []

    def vlcc_write(i):
        u[::4096] += 1.0      # new bytes in every chunk (2048 stores: negligible)
        versions.append(ck.checkpoint(step=i))
    res["vlcc checkpoint"] = timed(comm, vlcc_write, args.repeat)

    # Restore: each read target is a fresh array so both sides pay page faults alike.
    out = np.empty_like(u)

    def np_read(i):
        out[:] = np.fromfile(os.path.join(base, f"np{rank}.{i}.bin"))
    res["numpy fromfile"] = timed(comm, np_read, args.repeat)

    def np_readinto(i):
        with open(os.path.join(base, f"np{rank}.{i}.bin"), "rb", buffering=0) as f:
            f.readinto(memoryview(out).cast("B"))
    res["file readinto"] = timed(comm, np_readinto, args.repeat)
    ck2 = vlcc.Checkpointer(os.path.join(base, "repo"), comm=comm)
    ck2.register("u", out, global_shape=(n * size,), offset=(n * rank,))
    res["vlcc restore"] = timed(comm, lambda i: ck2.restore(versions[i].id), args.repeat)
    assert np.array_equal(out, u), "restore is not bit-exact"   # the last version = current u
    ck.close()
    ck2.close()

    if rank == 0:
        print(f"# {size} ranks x {args.mib} MiB, best of {args.repeat}, dir {os.path.dirname(base)}")
        for k, t in res.items():
            print(f"{k:<24} {t:8.3f} s  {gbs(t):7.2f} GB/s")
        w = res["vlcc checkpoint"]
        r1 = res["numpy tofile+fsync"] / w
        r2 = res["adios2 BP5+fsync"] / w
        r3 = res["adios2 BP5"] / w
        r4 = res["numpy fromfile"] / res["vlcc restore"]
        print(f"vlcc/numpy tofile+fsync {r1:.2f}x (target >=0.8)   vlcc/adios2+fsync {r2:.2f}x (target >=1.0)"
              f"   vlcc/adios2 no-fsync {r3:.2f}x   restore vlcc/numpy fromfile {r4:.2f}x (target >=0.8)"
              f"   restore vlcc/readinto {res['file readinto'] / res['vlcc restore']:.2f}x")
        if "h5py+fsync" in res:
            print(f"vlcc/h5py+fsync {res['h5py+fsync'] / w:.2f}x")
        print(f"SUMMARY bench_io: checkpoint {gbs(w):.2f} GB/s = {r1:.2f}x numpy+fsync, {r2:.2f}x adios2+fsync; "
              f"restore {gbs(res['vlcc restore']):.2f} GB/s = {r4:.2f}x numpy.fromfile")
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    from vlcc.comm.abort import abort_on_error
    abort_on_error()   # an error on one rank ends every rank (no rank left waiting)
    main()
