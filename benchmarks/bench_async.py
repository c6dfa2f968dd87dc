"""The async engine in numbers, measured in one run.

    mpiexec -n 2 python benchmarks/bench_async.py [--mib 64] [--steps 60] [--every 10]

1. blocking time of an async checkpoint vs numpy.copy of the same bytes;
2. application slowdown: a numpy stencil loop with an async checkpoint every
   --every steps vs the same loop without checkpoints (and with sync ones);
3. reverse replay of 20 versions (adjoint-like) with a memory budget of 5
   versions: schedule-aware prefetch (plan) vs LRU vs sync reads.
Timings are barrier to barrier, slowest rank. Prints ratios and one SUMMARY line.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile

import numpy as np
from mpi4py import MPI

import vlcc


def wall(comm, fn):
    comm.Barrier()
    t0 = MPI.Wtime()
    fn()
    comm.Barrier()
    return comm.allreduce(MPI.Wtime() - t0, op=MPI.MAX)


def drop_page_cache(comm) -> bool:
    """Empty the page cache (root only) so 'persistent' reads hit the disk."""
    ok = False
    if comm.rank == 0:
        try:
            os.sync()
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("3\n")
            ok = True
        except OSError:
            ok = False
    return comm.bcast(ok)


def stencil_steps(u, steps, hook=None):
    for s in range(steps):
        u[1:-1, 1:-1] = 0.25 * (u[:-2, 1:-1] + u[2:, 1:-1] + u[1:-1, :-2] + u[1:-1, 2:])
        if hook is not None:
            hook(s)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=64, help="state per rank")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    comm = MPI.COMM_WORLD
    rank = comm.rank
    base = comm.bcast(tempfile.mkdtemp(prefix="vlcc-bench-async-", dir=args.dir) if rank == 0 else None)
    n = int(np.sqrt(args.mib * (1 << 20) / 8))
    u0 = np.random.default_rng(rank).standard_normal((n, n))
    nbytes = u0.nbytes
    out = {}

    # 1. blocking time vs numpy.copy
    copies = [wall(comm, lambda: u0.copy()) for _ in range(5)]
    out["numpy.copy"] = min(copies)
    u = u0.copy()
    # Budget of 3 versions: after the first ones the memory tier recycles the
    # buffers of flushed versions (steady state); the first capture of a run
    # pays fresh page faults (reported as "cold").
    ck = vlcc.Checkpointer(os.path.join(base, "r1"), comm=comm, mode="async",
                           memory_budget=3 * nbytes + 4096, dedup=False)
    ck.register("u", u, global_shape=(n * comm.size, n), offset=(n * rank, 0))
    blocks = []
    for k in range(8):
        u += 1.0
        blocks.append(wall(comm, lambda: ck.checkpoint(step=k)))
        comm.Barrier()
        import time as _t
        _t.sleep(0.3)          # the application computes; the flush proceeds
    out["async checkpoint, cold"] = blocks[0]
    out["async checkpoint (blocking)"] = float(np.median(blocks[4:]))
    out["wait (rest of flush)"] = wall(comm, ck.wait)
    ck.close()

    # 2. application slowdown
    u = u0.copy()
    out["loop, no checkpoint"] = wall(comm, lambda: stencil_steps(u, args.steps))
    times = {}
    for mode, local in (("async", None), ("async-nolocal", "none"), ("sync", None)):
        u = u0.copy()
        c = vlcc.Checkpointer(os.path.join(base, f"loop-{mode}"), comm=comm, mode=mode.split("-")[0],
                              memory_budget=4 * nbytes, local_dir=local)
        c.register("u", u, global_shape=(n * comm.size, n), offset=(n * rank, 0))
        hook = (lambda s, c=c: c.checkpoint(step=s) if (s + 1) % args.every == 0 else None)
        times[mode] = wall(comm, lambda: (stencil_steps(u, args.steps, hook), c.wait()))
        c.close()
    out["loop, async checkpoints"] = times["async"]
    out["loop, async, no local tier"] = times["async-nolocal"]
    out["loop, sync checkpoints"] = times["sync"]

    # 3. reverse replay, budget of 5 versions
    m = 256 * 1024                                  # 2 MiB per rank per version
    x = np.zeros(m)
    path = os.path.join(base, "replay")
    with vlcc.Checkpointer(path, comm=comm) as c:
        c.register("x", x, global_shape=(m * comm.size,), offset=(m * rank,))
        ids = []
        for k in range(20):
            x[:] = k + rank
            ids.append(c.checkpoint(step=k).id)
    order = ids[::-1]
    hit = {}
    work = np.zeros((384, 384))
    cold = False
    for policy in ("persistent", "lru", "plan"):
        budget = 1 if policy == "persistent" else 5 * x.nbytes + 4096
        cold = drop_page_cache(comm)     # persistent storage as on a cluster: not in RAM
        with vlcc.Checkpointer(path, comm=comm, memory_budget=budget) as c:
            c.register("x", x, global_shape=(m * comm.size,), offset=(m * rank,))
            if policy == "plan":
                c.plan(order)

            def replay():
                for k, vid in zip(range(19, -1, -1), order):
                    c.restore(vid)
                    assert x[0] == k + rank
                    stencil_steps(work, 10)      # the backward step's compute (~ms)
            out[f"reverse replay, {policy}"] = wall(comm, replay)
            s = c.stats
            hit[policy] = s["hits"] / max(1, s["hits"] + s["misses"])

    if rank == 0:
        print(f"# {comm.size} ranks x {nbytes / 2**20:.0f} MiB state, {args.steps} steps, "
              f"checkpoint every {args.every}")
        for k, t in out.items():
            print(f"{k:<32} {t * 1e3:10.1f} ms")
        block_ratio = out["async checkpoint (blocking)"] / out["numpy.copy"]
        slow_async = out["loop, async checkpoints"] / out["loop, no checkpoint"] - 1
        slow_sync = out["loop, sync checkpoints"] / out["loop, no checkpoint"] - 1
        slow_nl = out["loop, async, no local tier"] / out["loop, no checkpoint"] - 1
        print(f"blocking async checkpoint / numpy.copy = {block_ratio:.2f}x steady state (target <= 1.25), "
              f"{out['async checkpoint, cold'] / out['numpy.copy']:.2f}x cold")
        print(f"slowdown: async {slow_async * 100:+.1f} %, async without local tier {slow_nl * 100:+.1f} %, "
              f"sync {slow_sync * 100:+.1f} % (target async <= 5 %; async only overlaps I/O with "
              f"compute when a core is free: run with fewer ranks than cores to see it)")
        print(f"reverse replay ({'page cache dropped before each' if cold else 'warm page cache'}) "
              f"hit rate: plan {hit['plan']:.2f}, lru {hit['lru']:.2f}; time plan/lru "
              f"{out['reverse replay, plan'] / out['reverse replay, lru']:.2f}x, plan/persistent "
              f"{out['reverse replay, plan'] / out['reverse replay, persistent']:.2f}x")
        print(f"SUMMARY bench_async: blocking {block_ratio:.2f}x numpy.copy; slowdown async "
              f"{slow_async * 100:+.1f} % vs sync {slow_sync * 100:+.1f} %; replay hit rate plan "
              f"{hit['plan']:.2f} vs lru {hit['lru']:.2f}")
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
