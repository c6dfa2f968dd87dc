"""Files per version and write time: node files (format 4, docs/format.md 3.4)
against one file per rank (the format-3 layout, ``VLCC_NODE_FILES=0``), in
the same run (issue 28, part B).

    python benchmarks/bench_files.py [--ranks 2,3] [--mib 32] [--steps 5] [--many 8,4]

(a) real runs: ``mpiexec -n N`` on this machine with nodes simulated by
    ``VLCC_NODE_ID`` (2 ranks per node: N=2 → 1 node, N=3 → 2 nodes), one
    distributed float64 array of ``--mib`` MiB per rank rewritten every step
    (nothing dedups); files of one version and the median checkpoint time,
    node files vs per-rank files; ``--many 8,4``: 8 ranks, 4 per node, 1 MiB.
(b) 10,000 ranks with 64 ranks per node, from the writer's own layout
    function (io/nodefile.node_layout) for one node and the file formula of
    docs/format.md 3.4 (per node: a BP5 directory of 4 files and an index;
    per version: ranks.bin and the manifest); the goal is ≤ 2 files per node
    + O(1).
(c) ``--modes N``: the async write modes at N ranks (straight to the
    repository, staged through a local_dir, staged without flusher MPI):
    files per version and time to committed, node files vs per-rank files.
Prints ratios and a final SUMMARY line; no thresholds."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

BP5_FILES = 4          # data.0, md.0, md.idx, mmd.0
PER_VERSION = 2        # ranks.bin and the manifest


def files_per_version(nranks: int, ranks_per_node: int, node_files: bool) -> int:
    """docs/format.md 3.4: 5·K + 2 with node files, 5·P + 2 per rank."""
    groups = -(-nranks // ranks_per_node) if node_files else nranks
    return groups * (BP5_FILES + 1) + PER_VERSION


def simulated(nranks: int = 10_000, per_node: int = 64, mib: float = 32.0) -> dict:
    from vlcc.io.nodefile import node_layout
    # one node's layout as the writer computes it (two variables per rank)
    rng = np.random.default_rng(0)
    per_rank = [(r, [("u", int(mib * 2 ** 20) + int(rng.integers(0, 4096))), (".pack", 777)])
                for r in range(per_node)]
    t = time.perf_counter()
    lay = node_layout(per_rank)
    t_layout = time.perf_counter() - t
    data = sum(n for _r, items in per_rank for _v, n in items)
    return {"ranks": nranks, "per_node": per_node,
            "nodes": -(-nranks // per_node),
            "files_node": files_per_version(nranks, per_node, True),
            "files_rank": files_per_version(nranks, per_node, False),
            "pad_fraction": (lay.nbytes - data) / data, "layout_ms": t_layout * 1e3,
            "variables_per_node": len(lay.variables)}


def worker(repo: str, steps: int, mib: float) -> None:
    from mpi4py import MPI
    import vlcc
    comm = MPI.COMM_WORLD
    os.environ["VLCC_NODE_ID"] = str(comm.rank // int(os.environ.get("BENCH_PER_NODE", "2")))
    n = int(mib * 2 ** 20) // 8
    u = np.empty(n)
    ck = vlcc.Checkpointer(repo, comm, chunk_size=4 << 20)
    ck.register("u", u, global_shape=(n * comm.size,), offset=(n * comm.rank,))
    times = []
    vid = None
    for k in range(steps):
        u[:] = np.random.default_rng(1000 * k + comm.rank).random(n)
        comm.Barrier()
        t = time.perf_counter()
        vid = ck.checkpoint(step=k).id
        if ck.stats.get("pending"):
            ck.wait()             # async: the time to committed
        comm.Barrier()
        times.append(time.perf_counter() - t)
    ck.close()
    if comm.rank == 0:
        nfiles = sum(len(fs) for _r, _d, fs in os.walk(os.path.join(repo, "data", vid))) + 1
        print("RESULT " + json.dumps({"median": statistics.median(times), "files": nfiles,
                                      "bytes": n * 8 * comm.size}), flush=True)


# (c) the async write modes (docs/architecture.md, "Files per version in every mode"):
# environment of each; "LOCAL" is replaced by a node-local directory of the run
MODES = {
    "async-direct": {"VLCC_MODE": "async", "VLCC_LOCAL_STAGE": "0"},
    "async-stage": {"VLCC_MODE": "async", "VLCC_LOCAL_DIR": "LOCAL"},
    "async-stage-funneled": {"VLCC_MODE": "async", "VLCC_LOCAL_DIR": "LOCAL", "VLCC_FLUSH_MPI": "0"},
}


def run(nranks: int, node_files: bool, steps: int, mib: float, per_node: int = 2,
        extra: dict | None = None) -> dict:
    d = tempfile.mkdtemp(prefix="vlcc-bench-files-", dir=os.environ.get("VLCC_BENCH_DIR"))
    env = dict(os.environ, VLCC_NODE_FILES="1" if node_files else "0", BENCH_PER_NODE=str(per_node),
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for k, v in (extra or {}).items():
        env[k] = os.path.join(d, "local") if v == "LOCAL" else v
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    cmd = [mpiexec, "-n", str(nranks), sys.executable, "-m", "mpi4py", os.path.abspath(__file__),
           "--worker", os.path.join(d, "repo"), "--steps", str(steps), "--mib", str(mib)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        if p.returncode != 0:
            raise SystemExit(f"bench_files: {' '.join(cmd)} failed ({p.returncode}):\n"
                             f"{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
        line = [x for x in p.stdout.splitlines() if x.startswith("RESULT ")][-1]
        return json.loads(line[len("RESULT "):])
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ranks", default="2,3")
    ap.add_argument("--mib", type=float, default=32.0, help="MiB per rank and version")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--many", default="8,4", type=lambda x: tuple(int(v) for v in x.split(",")) if x else None,
                    help="RANKS,PER_NODE of an extra small-data run ('' to skip)")
    ap.add_argument("--modes", default="", help="also the async write modes at this many ranks "
                    "(e.g. 3), time to committed, node files vs per rank")
    ap.add_argument("--worker", default=None)
    a = ap.parse_args()
    if a.worker:
        return worker(a.worker, a.steps, a.mib)
    parts = []
    for n in [int(x) for x in a.ranks.split(",") if x]:
        # alternate the two layouts so machine noise hits both alike
        node, rank = run(n, True, a.steps, a.mib), run(n, False, a.steps, a.mib)
        nodes = -(-n // 2)
        print(f"{n} ranks, {nodes} node(s) of ≤2 ranks, {a.mib:g} MiB/rank: files per version "
              f"{node['files']} (node files) vs {rank['files']} (per rank); checkpoint "
              f"{node['median'] * 1e3:.1f} vs {rank['median'] * 1e3:.1f} ms "
              f"(ratio {node['median'] / rank['median']:.2f})")
        parts.append(f"P={n}: files {node['files']} vs {rank['files']}, write time ratio "
                     f"{node['median'] / rank['median']:.2f}")
    if a.many:
        # many simulated ranks per node on small data: the node path at a
        # higher ranks-per-node count (oversubscribed here: 2 cores)
        n, per = a.many
        node, rank = run(n, True, a.steps, 1.0, per), run(n, False, a.steps, 1.0, per)
        print(f"{n} ranks, {per} per node, 1 MiB/rank: files per version {node['files']} vs "
              f"{rank['files']}; checkpoint {node['median'] * 1e3:.1f} vs "
              f"{rank['median'] * 1e3:.1f} ms (ratio {node['median'] / rank['median']:.2f})")
        parts.append(f"P={n}/{per} per node: files {node['files']} vs {rank['files']}, write time "
                     f"ratio {node['median'] / rank['median']:.2f}")
    if a.modes:
        n = int(a.modes)
        for name, extra in MODES.items():
            node = run(n, True, a.steps, a.mib, extra=extra)
            rank = run(n, False, a.steps, a.mib, extra=extra)
            print(f"{name}, {n} ranks, {a.mib:g} MiB/rank: files per version {node['files']} "
                  f"(node files) vs {rank['files']} (per rank); to committed "
                  f"{node['median'] * 1e3:.1f} vs {rank['median'] * 1e3:.1f} ms "
                  f"(ratio {node['median'] / rank['median']:.2f})")
            parts.append(f"{name} P={n}: files {node['files']} vs {rank['files']}, time ratio "
                         f"{node['median'] / rank['median']:.2f}")
    s = simulated()
    print(f"simulated {s['ranks']:,} ranks, {s['per_node']} per node ({s['nodes']} nodes): "
          f"{s['files_node']:,} files per version vs {s['files_rank']:,} per rank "
          f"({s['files_rank'] / s['files_node']:.0f}x fewer); "
          f"{(s['files_node'] - PER_VERSION) / s['nodes']:.0f} files per node + {PER_VERSION} "
          f"(goal ≤ 2 per node + O(1): not met, ADIOS2's serial build writes 3 metadata files "
          f"per node file); layout of one node {s['layout_ms']:.2f} ms, padding "
          f"{s['pad_fraction'] * 100:.4f} % of the bytes")
    parts.append(f"P=10,000/64 per node: {s['files_node']:,} vs {s['files_rank']:,} files "
                 f"({s['files_rank'] / s['files_node']:.0f}x)")
    print("SUMMARY bench_files: " + "; ".join(parts))


if __name__ == "__main__":
    from vlcc.comm.abort import abort_on_error
    abort_on_error()   # an error on one rank ends every rank (no rank left waiting)
    main()
