#!/usr/bin/env python
"""libvlcc (C ABI) vs the Python API, in one run.

    python benchmarks/bench_capi.py [--mib 256] [-n 2] [--iters 3] [--calls 20000]

Builds a small C program against libvlcc with mpicc, runs it and the equivalent Python
program under ``mpiexec -n N`` (fresh repositories in a temporary directory), and prints:

* cost of one call: ``vlcc_wait()`` (a no-op in sync mode) and ``vlcc_query("latest")``
  (collective: rank 0 resolves the branch head, broadcast) timed in a C loop with
  clock_gettime, vs ``ck.wait()`` and the same query code path called from Python (µs);
* start-up of the embedded library: the first call into libvlcc (starts Python, imports
  vlcc, numpy, mpi4py) and the first ``vlcc_init``, vs ``import vlcc`` + ``Checkpointer()``
  inside an already running Python;
* checkpoint throughput from C vs from Python on the same data: two float64 arrays of
  MIB MiB each (global, distributed over the ranks), every element changed between
  checkpoints (no dedup), sync mode; median over ``--iters`` checkpoints, GiB/s of
  captured bytes (time = slowest rank, barrier before each checkpoint).

The last line is a one-line summary. Goal: C/Python throughput >= 0.95.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <vlcc.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
                          return t.tv_sec + 1e-9 * t.tv_nsec; }
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b;
                                               return (x > y) - (x < y); }
#define CHECK(c) do { int rc_ = (c); if (rc_) { fprintf(stderr, "%s: %s\n", #c, vlcc_last_error()); \
                      MPI_Abort(MPI_COMM_WORLD, 2); } } while (0)

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size; MPI_Comm_rank(MPI_COMM_WORLD, &rank); MPI_Comm_size(MPI_COMM_WORLD, &size);
    const char *repo = argv[1];
    int64_t mib = atoll(argv[2]); int iters = atoi(argv[3]); long calls = atol(argv[4]);
    double t0 = now();
    int rc = vlcc_wait();                       /* first call: boots the embedded Python */
    double t1 = now();
    if (rc != VLCC_ESTATE) { fprintf(stderr, "unexpected %d\n", rc); MPI_Abort(MPI_COMM_WORLD, 3); }
    CHECK(vlcc_init(repo, MPI_COMM_WORLD, NULL));
    double t2 = now();
    int64_t n = mib * 1024 * 1024 / 8, nl = n / size + (rank < n % size);
    int64_t off = rank * (n / size) + (rank < n % size ? rank : n % size);
    double *a = malloc(nl * sizeof *a), *b = malloc(nl * sizeof *b);
    int64_t gs[1] = {n}, ls[1] = {nl}, o[1] = {off};
    CHECK(vlcc_register("a", a, VLCC_FLOAT64, 1, ls, gs, o, 0));
    CHECK(vlcc_register("b", b, VLCC_FLOAT64, 1, ls, gs, o, 0));
    double *ts = malloc(iters * sizeof *ts);
    for (int it = 0; it < iters; it++) {
        for (int64_t i = 0; i < nl; i++) { a[i] = (double)(off + i) * 1e-3 + it; b[i] = -a[i]; }
        MPI_Barrier(MPI_COMM_WORLD);
        double s = now();
        CHECK(vlcc_checkpoint(it, NULL, NULL, 0));
        double e = now() - s;
        MPI_Allreduce(&e, &ts[it], 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    }
    qsort(ts, iters, sizeof *ts, cmp);
    MPI_Barrier(MPI_COMM_WORLD);
    double s = now();
    int bad = 0;
    for (long k = 0; k < calls; k++) bad |= vlcc_wait();
    double wait_us = (now() - s) / calls * 1e6;
    CHECK(bad);
    long qcalls = calls / 10 > 0 ? calls / 10 : 1;
    int64_t step;
    char id[VLCC_ID_MAX];
    MPI_Barrier(MPI_COMM_WORLD);
    s = now();
    for (long k = 0; k < qcalls; k++) CHECK(vlcc_query("latest", id, sizeof id, &step));
    double query_us = (now() - s) / qcalls * 1e6;
    if (rank == 0) {
        printf("boot_s %.6f\ninit_s %.6f\nckpt_s %.6f\nwait_us %.3f\nquery_us %.3f\nbytes %lld\n",
               t1 - t0, t2 - t1, ts[iters / 2], wait_us, query_us, (long long)(2 * n * 8));
    }
    CHECK(vlcc_finalize());
    MPI_Finalize();
    return 0;
}
"""


def python_part(repo: str, mib: int, iters: int, calls: int) -> None:
    """The same measurements from Python (run under mpiexec)."""
    t0 = time.perf_counter()
    import numpy as np
    from mpi4py import MPI

    import vlcc
    from vlcc.comm.protocol import root_only
    from vlcc import Repository
    t1 = time.perf_counter()
    comm = MPI.COMM_WORLD
    ck = vlcc.Checkpointer(repo, comm=comm)
    t2 = time.perf_counter()
    rank, size = comm.rank, comm.size
    n = mib * 1024 * 1024 // 8
    nl = n // size + (rank < n % size)
    off = rank * (n // size) + min(rank, n % size)
    a, b = np.empty(nl), np.empty(nl)
    ck.register("a", a, global_shape=(n,), offset=(off,))
    ck.register("b", b, global_shape=(n,), offset=(off,))
    idx = np.arange(off, off + nl, dtype=np.float64)
    ts = []
    for it in range(iters):
        np.multiply(idx, 1e-3, out=a)
        a += it
        np.negative(a, out=b)
        comm.Barrier()
        s = time.perf_counter()
        ck.checkpoint(step=it)
        ts.append(comm.allreduce(time.perf_counter() - s, op=MPI.MAX))
    ts.sort()
    comm.Barrier()
    s = time.perf_counter()
    for _ in range(calls):
        ck.wait()
    wait_us = (time.perf_counter() - s) / calls * 1e6

    def query():       # what vlcc_query("latest") runs, called from Python
        def look():
            vid = ck.repository.branch_head(ck.branch_name)
            v = Repository(ck.path).resolve(vid)
            return v.id, v.step
        return root_only(ck.comm, look)
    qcalls = max(1, calls // 10)
    comm.Barrier()
    s = time.perf_counter()
    for _ in range(qcalls):
        query()
    query_us = (time.perf_counter() - s) / qcalls * 1e6
    if rank == 0:
        print(f"boot_s {t1 - t0:.6f}\ninit_s {t2 - t1:.6f}\nckpt_s {ts[len(ts) // 2]:.6f}\n"
              f"wait_us {wait_us:.3f}\nquery_us {query_us:.3f}\nbytes {2 * n * 8}", flush=True)
    ck.close()


def run(cmd, timeout, env=None) -> str:
    p = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True, env=env)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise SystemExit(f"timeout after {timeout}s: {' '.join(map(str, cmd))}")
    if p.returncode:
        raise SystemExit(f"{' '.join(map(str, cmd))} exited {p.returncode}\n{out}\n{err}")
    return out


def parse(out: str) -> dict:
    return {k: float(v) for k, v in re.findall(r"^(\w+) ([0-9.eE+-]+)$", out, re.M)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mib", type=int, default=256, help="MiB per array (2 arrays; default 256)")
    ap.add_argument("-n", "--ranks", type=int, default=2)
    ap.add_argument("--iters", type=int, default=3, help="checkpoints per side (median)")
    ap.add_argument("--calls", type=int, default=20000, help="calls in the per-call loops")
    ap.add_argument("--timeout", type=int, default=1800)
    ap.add_argument("--dir", help="work directory (default: a temporary one)")
    ap.add_argument("--python-part", nargs=4, metavar=("REPO", "MIB", "ITERS", "CALLS"),
                    help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.dir is not None and not os.path.isdir(a.dir):   # on every rank: all stop
        ap.error(f"--dir {a.dir}: no such directory")
    if a.python_part:
        repo, mib, iters, calls = a.python_part
        python_part(repo, int(mib), int(iters), int(calls))
        return 0

    from vlcc.capi import build as capi_build
    from vlcc.capi.build.config import flags
    capi_build.ensure_built()
    bindir = Path(sys.executable).parent
    mpiexec = bindir / "mpiexec" if (bindir / "mpiexec").exists() else "mpiexec"
    mpicc = capi_build.find_tool("mpicc")
    with tempfile.TemporaryDirectory(prefix="vlcc-bench-capi-", dir=a.dir) as t:
        d = Path(t)
        (d / "bench.c").write_text(BENCH_C)
        run([mpicc, "-O2", *flags("cflags").split(), d / "bench.c", "-o", d / "bench",
             *flags("libs").split()], 300)
        common = [a.mib, a.iters, a.calls]
        c = parse(run([mpiexec, "-n", a.ranks, d / "bench", d / "repo_c", *common], a.timeout))
        py = parse(run([mpiexec, "-n", a.ranks, sys.executable, Path(__file__).resolve(),
                        "--python-part", d / "repo_py", *common], a.timeout))
    gib = c["bytes"] / 2**30
    thr_c, thr_py = gib / c["ckpt_s"], gib / py["ckpt_s"]
    print(f"libvlcc vs Python API, {a.ranks} ranks, 2 x {a.mib} MiB float64 "
          f"(distributed), sync mode, median of {a.iters} checkpoints")
    print(f"{'':34s}{'C (libvlcc)':>14s}{'Python':>14s}{'C/Python':>10s}")
    rows = [("no-op call vlcc_wait / ck.wait [us]", c["wait_us"], py["wait_us"]),
            ("vlcc_query('latest') [us]", c["query_us"], py["query_us"]),
            ("start-up: first call / import [s]", c["boot_s"], py["boot_s"]),
            ("vlcc_init / Checkpointer() [s]", c["init_s"], py["init_s"]),
            ("checkpoint time [s]", c["ckpt_s"], py["ckpt_s"]),
            ("checkpoint throughput [GiB/s]", thr_c, thr_py)]
    for name, x, y in rows:
        print(f"{name:34s}{x:14.4f}{y:14.4f}{x / y:10.3f}")
    overhead = c["wait_us"] - py["wait_us"]
    print(f"SUMMARY bench_capi: C call overhead {overhead:+.2f} us/call "
          f"(C {c['wait_us']:.2f} us vs Python {py['wait_us']:.2f} us), first call "
          f"{c['boot_s'] * 1e3:.0f} ms, checkpoint throughput C/Python = {thr_c / thr_py:.3f} "
          f"({thr_c:.2f} vs {thr_py:.2f} GiB/s; goal >= 0.95)")
    return 0


if __name__ == "__main__":
    from vlcc.comm.abort import abort_on_error
    abort_on_error()   # an error on one rank ends every rank (no rank left waiting)
    sys.exit(main())
