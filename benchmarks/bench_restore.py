"""Restore throughput of vlcc against reading the same bytes with ``readinto``, in one run.

    mpiexec -n 2 python benchmarks/bench_restore.py --part same [--mib 128]
    mpiexec -n 3 python benchmarks/bench_restore.py --part nm [--rows 8192 --cols 4096]

``same``: every rank restores its own block of a distributed float64 array
(--mib MiB per rank; 1-D, then 2-D row-split) written on the same rank count. ``nm``: a rows x cols
float64 array is written row-split on --writers ranks (a sub-communicator of
the first ranks) and restored on all ranks row-split and column-split.

Each vlcc restore is compared with ``readinto`` of the same number of bytes
per rank from a plain file into a preallocated buffer (the issue's reference),
and with the physical limit of a warm read: the same bytes copied out of a
mapping of the page cache (``mmap copy``), warm (page cache
hot) and cold (the files' pages dropped with posix_fadvise(DONTNEED) after
fsync, on both sides). Restores run ``atomic=True`` (staged: read and check
everything, then copy) and ``atomic=False`` (straight into the arrays) when
the installed vlcc has the keyword. Timings are barrier to barrier (slowest
rank), best of --repeat. Prints ratios and a final ``SUMMARY`` line.
"""

from __future__ import annotations

import argparse
import inspect
import mmap
import os
import shutil
import tempfile

import numpy as np
from mpi4py import MPI

import vlcc
from bench_io import timed   # benchmarks/ is on the path when run as a script


def drop_cache(paths):
    """Drop the page-cache pages of every file under ``paths`` (this rank's view)."""
    for top in paths:
        walk = [(os.path.dirname(top), [], [os.path.basename(top)])] if os.path.isfile(top) \
            else os.walk(top)
        for root, _d, files in walk:
            for f in files:
                fd = os.open(os.path.join(root, f), os.O_RDONLY)
                try:
                    os.fsync(fd)
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)


def plain_file(base, rank, nbytes):
    p = os.path.join(base, f"plain{rank}.bin")
    np.random.default_rng(100 + rank).integers(0, 255, nbytes, np.uint8).tofile(p)
    return p


def restore_modes():
    has = "atomic" in inspect.signature(vlcc.Checkpointer.restore).parameters
    return [("atomic", {"atomic": True}), ("direct", {"atomic": False})] if has else [("main", {})]


def measure(comm, ck, vid, repo, plain, buf, repeat, label, res):
    """vlcc restore of ``vid`` (each mode, warm and cold) against readinto of the
    same bytes per rank. The contenders alternate within each repeat (the
    machine is shared: load changes between seconds) and the best time counts."""
    data = [os.path.join(repo, "data", vid)]

    def rd(_i):
        with open(plain, "rb", buffering=0) as f:
            f.readinto(memoryview(buf).cast("B"))

    def mapped_copy(_i):
        # the physical limit of a warm read here: the page cache copied out of
        # a mapping (no read syscall copy), 1 MiB at a time like vlcc
        with open(plain, "rb") as f:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        src, dst = np.frombuffer(mm, np.uint8), memoryview(buf).cast("B")
        out = np.frombuffer(dst, np.uint8)
        for o in range(0, src.size, 1 << 20):
            np.copyto(out[o:o + (1 << 20)], src[o:o + (1 << 20)])
        del src, out
        dst.release()
        mm.close()
    runs = [("readinto", rd, [plain]), ("mmap copy", mapped_copy, [plain])]
    for mode, kw in restore_modes():
        runs.append((f"vlcc {mode}", lambda _i, kw=kw: ck.restore(vid, **kw), data))
    for temp in ("warm", "cold"):
        cold = temp == "cold"
        if not cold:
            for _name, fn, _files in runs:       # page cache hot, staging pool filled
                fn(0)
        best = {name: float("inf") for name, _fn, _files in runs}
        for i in range(repeat):
            for name, fn, files in runs:
                best[name] = min(best[name], timed(comm, fn, 1,
                                                   (lambda f=files: drop_cache(f)) if cold else None))
        ref = best["readinto"]
        res.append((f"{label} readinto {temp}", ref, None))
        res.append((f"{label} mmap copy {temp}", best["mmap copy"], None))
        for name, _fn, _files in runs[2:]:
            res.append((f"{label} {name} {temp}", best[name], ref / best[name],
                        best["mmap copy"] / best[name]))


def part_same(comm, base, args, res):
    """Same rank count: a 1-D array, and a 2-D one (row split, 4096 columns)."""
    rank, size = comm.rank, comm.size
    n = args.mib * (1 << 20) // 8
    for nd in (1, 2):
        shape = (n,) if nd == 1 else (n // 4096, 4096)
        gshape, off = ((n * size,), (n * rank,)) if nd == 1 else \
            ((shape[0] * size, 4096), (shape[0] * rank, 0))
        u = np.random.default_rng(rank).standard_normal(shape)
        repo = os.path.join(base, f"same{nd}")
        with vlcc.Checkpointer(repo, comm=comm, dedup=False) as ck:
            ck.register("u", u, global_shape=gshape, offset=off)
            vid = ck.checkpoint(step=0).id
        out = np.zeros_like(u)
        plain = plain_file(base, rank, out.nbytes)
        with vlcc.Checkpointer(repo, comm=comm) as ck:
            ck.register("u", out, global_shape=gshape, offset=off)
            measure(comm, ck, vid, repo, plain, np.empty_like(out), args.repeat,
                    f"same {size}r {nd}d", res)
        assert np.array_equal(out, u), "restore is not bit-exact"


def split(n, parts, i):
    return n * i // parts, n * (i + 1) // parts


def part_nm(comm, base, args, res):
    rank, size = comm.rank, comm.size
    rows, cols, w = args.rows, args.cols, min(args.writers, size)
    glob = np.arange(rows * cols, dtype=np.float64).reshape(rows, cols)
    repo = os.path.join(base, "nm")
    sub = comm.Split(0 if rank < w else MPI.UNDEFINED, rank)
    vid = None
    if rank < w:
        r0, r1 = split(rows, w, rank)
        blk = glob[r0:r1].copy()
        with vlcc.Checkpointer(repo, comm=sub, dedup=False) as ck:
            ck.register("a", blk, global_shape=(rows, cols), offset=(r0, 0))
            vid = ck.checkpoint(step=0).id
        sub.Free()
    vid = comm.bcast(vid, root=0)
    for how in ("rows", "cols"):
        if how == "rows":
            r0, r1 = split(rows, size, rank)
            off, sl = (r0, 0), (slice(r0, r1), slice(None))
        else:
            c0, c1 = split(cols, size, rank)
            off, sl = (0, c0), (slice(None), slice(c0, c1))
        out = np.zeros(glob[sl].shape)
        plain = plain_file(base, rank, out.nbytes)
        with vlcc.Checkpointer(repo, comm=comm) as ck:
            ck.register("a", out, global_shape=(rows, cols), offset=off)
            measure(comm, ck, vid, repo, plain, np.empty_like(out), args.repeat,
                    f"nm {w}->{size} {how}", res)
        assert np.array_equal(out, glob[sl]), f"N->M {how} restore is not bit-exact"
    return rows * cols * 8


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=("same", "nm", "all"), default="all")
    ap.add_argument("--mib", type=int, default=128, help="MiB per rank (part same)")
    ap.add_argument("--rows", type=int, default=8192)
    ap.add_argument("--cols", type=int, default=4096)
    ap.add_argument("--writers", type=int, default=2, help="ranks writing the N->M version")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--dir", default=None, help="where to write (default: a temp dir)")
    args = ap.parse_args()
    comm = MPI.COMM_WORLD
    base = comm.bcast(tempfile.mkdtemp(prefix="vlcc-bench-restore-", dir=args.dir)
                      if comm.rank == 0 else None)
    res: list = []
    try:
        if args.part in ("same", "all"):
            part_same(comm, base, args, res)
        if args.part in ("nm", "all"):
            part_nm(comm, base, args, res)
    finally:
        comm.Barrier()
        if comm.rank == 0:
            shutil.rmtree(base, ignore_errors=True)
    if comm.rank == 0:
        print(f"# {comm.size} ranks, best of {args.repeat}; ratio = readinto time / vlcc time "
              f"(same bytes per rank); mmap copy = the page cache copied out of a mapping, "
              f"the physical limit of a warm read")
        for label, t, ratio, *lim in res:
            print(f"{label:<36} {t:8.3f} s" + (f"   {ratio:5.2f}x readinto, {lim[0]:5.2f}x mmap copy"
                                               if ratio else ""))
        summary = ", ".join(f"{label.replace(' vlcc', '')} {ratio:.2f}x"
                            for label, _t, ratio, *_l in res if ratio)
        print(f"SUMMARY bench_restore: {summary}")


if __name__ == "__main__":
    from vlcc.comm.abort import abort_on_error
    abort_on_error()   # an error on one rank ends every rank (no rank left waiting)
    main()
