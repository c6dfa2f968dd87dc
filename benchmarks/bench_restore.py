"""Restore throughput of vlcc against reading the same bytes with ``readinto``, in one run.

    mpiexec -n 2 python benchmarks/bench_restore.py --part same [--mib 128]
    mpiexec -n 3 python benchmarks/bench_restore.py --part nm [--rows 8192 --cols 4096]
    mpiexec -n 2 python benchmarks/bench_restore.py --part fresh|many
    mpiexec -n 3 python benchmarks/bench_restore.py --profile    # + a stage table per rank

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
rank), best of --repeat. ``fresh``: restore right after ``checkpoint()`` in
the same process against readinto of a numpy file written just before.
``many``: 10,000 providers of 1 KiB, restore time against checkpoint time.

Every ratio is the reference time / vlcc time, the reference being the
faster of readinto and mmap copy in the same run; the last line (SUMMARY)
gives the goals of issue 27 next to the measured ratios of the default
(atomic) restore. ``--profile`` restores once more per case with
vlcc/restore/profile.py on and prints where each rank's time went (stages,
page faults).
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
try:
    from vlcc.restore import profile as prof
except ImportError:     # an older vlcc (to compare with): no --profile
    prof = None
from bench_io import timed   # benchmarks/ is on the path when run as a script

# issue 27: minimum of reference time / vlcc time (default restore)
GOALS = {("same", "warm"): 0.9, ("rows", "warm"): 0.85, ("cols", "warm"): 0.7,
         ("same", "cold"): 0.9, ("rows", "cold"): 0.9, ("cols", "cold"): 0.8,
         ("fresh", "warm"): 0.8}
MANY_GOAL = 1.2         # restore time / checkpoint time, at most
PROFILES: list = []     # (case, [per-rank stage dicts])


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


def profiled(comm, ck, vid, kw, case, cold, files):
    """One more restore with the stage profile on; every rank's stages."""
    if cold:
        drop_cache(files)
    comm.Barrier()
    prof.enable()
    t0 = MPI.Wtime()
    ck.restore(vid, **kw)
    wall = MPI.Wtime() - t0
    got = prof.take()
    prof.enable(False)
    got["wall"] = wall
    PROFILES.append((case, comm.gather(got, root=0)))


def measure(comm, ck, vid, repo, plain, buf, repeat, label, res, goal=None, profile=False):
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
    def verified(fused):
        # the floor of a verified restore of the same bytes: every byte
        # hashed (xxh3-128, 1 MiB slices) and copied, either in one pass
        # (``fused``: a direct restore) or hashed in place first and copied
        # after (an all-or-nothing restore: nothing lands before all is checked)
        def run(_i):
            import xxhash
            with open(plain, "rb") as f:
                mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            src = np.frombuffer(mm, np.uint8)
            dst = memoryview(buf).cast("B")
            out = np.frombuffer(dst, np.uint8)
            h, step = xxhash.xxh3_128(), 1 << 20
            if not fused:
                for o in range(0, src.size, step):
                    h.update(src[o:o + step])
            for o in range(0, src.size, step):
                np.copyto(out[o:o + step], src[o:o + step])
                if fused:
                    h.update(out[o:o + step])
            del src, out
            dst.release()
            mm.close()
        return run
    runs = [("readinto", rd, [plain]), ("mmap copy", mapped_copy, [plain]),
            ("floor: hash, then copy", verified(False), [plain]),
            ("floor: copy+hash fused", verified(True), [plain])]
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
        ref = min(best["readinto"], best["mmap copy"])
        res.append((f"{label} readinto {temp}", best["readinto"], None))
        res.append((f"{label} mmap copy {temp}", best["mmap copy"], None))
        for name, _fn, _files in runs[2:4]:
            res.append((f"{label} {name} {temp}", best[name], ref / best[name]))
        for (name, _fn, _files), (mode, kw) in zip(runs[4:], restore_modes()):
            g = (goal, temp) if goal and mode in ("atomic", "main") else None
            res.append((f"{label} {name} {temp}", best[name], ref / best[name], g))
            if profile:
                profiled(comm, ck, vid, kw, f"{label} {name} {temp}", cold, data)


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
                    f"same {size}r {nd}d", res, "same" if nd == 2 else None, args.profile)
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
                    f"nm {w}->{size} {how}", res, how, args.profile)
        assert np.array_equal(out, glob[sl]), f"N->M {how} restore is not bit-exact"
    return rows * cols * 8


def part_fresh(comm, base, args, res):
    """Restore right after checkpoint() in the same process against readinto
    of a numpy file written just before (both: the state just written). The
    checkpoint itself is timed too, against one that keeps no copy in the
    memory tier (a 4 KiB memory_budget), alternating: the copy must not slow it.
    ``--keep 1|0|auto`` sets VLCC_KEEP_LAST (auto: the copy only with a
    spare CPU)."""
    from vlcc.engine.buffers import spare_cpu
    os.environ["VLCC_KEEP_LAST"] = args.keep
    rank = comm.rank
    n = args.mib * (1 << 20) // 8
    u = np.random.default_rng(rank).standard_normal(n)
    keep = u.copy()
    plain = os.path.join(base, f"fresh{rank}.npy")
    buf = np.empty_like(u)
    best = {"vlcc": float("inf"), "readinto": float("inf"), "ckpt": float("inf"),
            "ckpt nokeep": float("inf")}
    kw = dict(comm=comm, dedup=False)
    with vlcc.Checkpointer(os.path.join(base, "fresh"), **kw) as ck, \
            vlcc.Checkpointer(os.path.join(base, "fresh0"), memory_budget=4096, **kw) as ck0:
        for c in (ck, ck0):
            c.register("u", u, global_shape=(n * comm.size,), offset=(n * rank,))
        for i in range(args.repeat):
            u[:8] = i                              # a new state each time
            best["ckpt nokeep"] = min(best["ckpt nokeep"],
                                      timed(comm, lambda _i: ck0.checkpoint(step=i), 1))
            best["ckpt"] = min(best["ckpt"], timed(comm, lambda _i: ck.checkpoint(step=i), 1))
            u[:] = 0
            best["vlcc"] = min(best["vlcc"], timed(comm, lambda _i: ck.restore(), 1))
            assert u[0] == i and np.array_equal(u[8:], keep[8:]), "restore is not bit-exact"
            u.tofile(plain)

            def rd(_i):
                with open(plain, "rb", buffering=0) as f:
                    f.readinto(memoryview(buf).cast("B"))
            best["readinto"] = min(best["readinto"], timed(comm, rd, 1))
        if args.profile:
            u[:8] = -1
            ck.checkpoint(step=args.repeat)
            profiled(comm, ck, None, {}, "fresh: restore after checkpoint", False, [])
    res.append((f"fresh {comm.size}r (memory copy: {args.keep}, spare cpu: "
                f"{spare_cpu()})", 0.0, None))
    res.append((f"fresh {comm.size}r checkpoint, no memory copy", best["ckpt nokeep"], None))
    res.append((f"fresh {comm.size}r checkpoint (copy kept in memory)", best["ckpt"], None))
    res.append((f"fresh {comm.size}r readinto of a just-written file", best["readinto"], None))
    res.append((f"fresh {comm.size}r vlcc restore after checkpoint", best["vlcc"],
                best["readinto"] / best["vlcc"], ("fresh", "warm")))
    res.append(("KEEP", best["ckpt"] / best["ckpt nokeep"], None))


def part_many(comm, base, args, res):
    """10,000 providers of 1 KiB per rank: restore time against checkpoint time."""
    arrays = [np.full(128, i, np.float64) for i in range(args.providers)]
    best = {"checkpoint": float("inf"), "restore": float("inf")}
    with vlcc.Checkpointer(os.path.join(base, "many"), comm=comm, dedup=False) as ck:
        for i, a in enumerate(arrays):
            ck.register(f"p{i}", a)
        for i in range(args.repeat):
            arrays[0][0] = i
            best["checkpoint"] = min(best["checkpoint"],
                                     timed(comm, lambda _i: ck.checkpoint(step=i), 1))
            best["restore"] = min(best["restore"], timed(comm, lambda _i: ck.restore(), 1))
        if args.profile:
            profiled(comm, ck, None, {}, f"many: {args.providers} providers of 1 KiB", False, [])
    res.append((f"many {args.providers}x1KiB checkpoint", best["checkpoint"], None))
    res.append((f"many {args.providers}x1KiB restore", best["restore"], None))
    res.append(("MANY", best["restore"] / best["checkpoint"], None))


def print_profiles():
    for case, ranks in PROFILES:
        print(f"# stages of one restore, {case} (ms per rank; faults: counts)")
        cols = [k for k in prof.STAGES if any(r.get(k, 0) >= 5e-5 for r in ranks)]
        head = ["rank", "wall"] + cols + ["minor faults", "major faults"]
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for i, r in enumerate(ranks):
            cells = [str(i), f"{r['wall'] * 1e3:.1f}"] + [f"{r[k] * 1e3:.1f}" for k in cols] \
                + [str(r["minor faults"]), str(r["major faults"])]
            print("| " + " | ".join(cells) + " |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=("same", "nm", "fresh", "many", "all"), default="all")
    ap.add_argument("--keep", choices=("1", "0", "auto"), default="1",
                    help="part fresh: VLCC_KEEP_LAST (a copy of each version in memory)")
    ap.add_argument("--providers", type=int, default=10000, help="providers of part many")
    ap.add_argument("--profile", action="store_true",
                    help="print a stage table per rank of one more restore per case")
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
        if args.part in ("fresh", "all"):
            part_fresh(comm, base, args, res)
        if args.part in ("many", "all"):
            part_many(comm, base, args, res)
    finally:
        comm.Barrier()
        if comm.rank == 0:
            shutil.rmtree(base, ignore_errors=True)
    if comm.rank == 0:
        print(f"# {comm.size} ranks, best of {args.repeat}; ratio = reference time / vlcc time "
              f"(same bytes per rank), the reference being the faster of readinto and mmap copy "
              f"(the page cache copied out of a mapping) in this run")
        many = keep = None
        for label, t, ratio, *goal in res:
            if label == "KEEP":
                keep = t
                print(f"fresh: checkpoint time with the memory copy / without = {t:.2f}")
                continue
            if label == "MANY":
                many = t
                print(f"many: restore / checkpoint = {t:.2f} (goal <= {MANY_GOAL})")
                continue
            print(f"{label:<44} {t:8.4f} s" + (f"   {ratio:5.2f}x" if ratio else ""))
        if args.profile:
            print_profiles()
        goals = [f"{label.replace(' vlcc', '')} {ratio:.2f}x (goal {GOALS[g]})"
                 for label, _t, ratio, *gl in res if ratio and gl and (g := gl[0])]
        if keep is not None:
            goals.append(f"checkpoint with/without memory copy {keep:.2f}")
        if many is not None:
            goals.append(f"many restore/checkpoint {many:.2f} (goal <= {MANY_GOAL})")
        rest = [f"{label.replace(' vlcc', '')} {ratio:.2f}x"
                for label, _t, ratio, *gl in res if ratio and not (gl and gl[0])]
        print(f"SUMMARY bench_restore: {', '.join(goals + rest)}")


if __name__ == "__main__":
    from vlcc.comm.abort import abort_on_error
    abort_on_error()   # an error on one rank ends every rank (no rank left waiting)
    main()
