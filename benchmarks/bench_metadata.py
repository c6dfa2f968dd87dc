"""Metadata cost per version vs rank count (issue 17; docs/architecture.md, "Scaling limits").

    python benchmarks/bench_metadata.py [--sim-ranks 100,1000,10000,100000] [--providers 10,100]
    python benchmarks/bench_metadata.py --real 1,2,4,8 [--steps 10]     # launches mpiexec itself

(a) real runs (``--real``): N oversubscribed ranks on this machine (say so: 2 cores),
    10 distributed providers of 1024 float64 per rank; commit time, restore time and
    manifest bytes per version.
(b) simulation without MPI: the metadata of P ranks × L providers (per-rank leaf
    descriptions and write results synthesized) goes through the code paths of a
    commit (commit/manifest.build, seal, atomic writes of the manifest and its side
    files) and of a reader (load_manifest, the rank table, the decomposition of one
    provider); bytes and seconds per version and the growth exponent in P. The
    format-1 manifest (one JSON block per rank and provider) is built alongside for
    comparison.
(c) ``log()`` over 1,000 versions written with P = 16 and P = 16,384 ranks.
Prints ratios and a final SUMMARY line; no thresholds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from types import SimpleNamespace

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from vlcc import Repository  # noqa: E402
from vlcc.commit import manifest as mf  # noqa: E402
from vlcc.commit import validate  # noqa: E402
from vlcc.repo import config as repo_config  # noqa: E402
from vlcc.repo.fsutil import atomic_write  # noqa: E402
from vlcc.repo.manifest import load_manifest, rank_indexes  # noqa: E402
from vlcc.repo.paths import RepoPaths, new_version_id  # noqa: E402
from vlcc.repo.sealed import seal  # noqa: E402
from vlcc.restore.reader import VersionReader  # noqa: E402

ROW = 1024   # float64 elements per rank and provider


def synth(p: int, nprov: int, vid: str, parent=None):
    """What rank 0 receives at commit time from P ranks × L distributed
    providers (a 1-D block decomposition, ROW elements per rank): every rank's
    compact validation record (commit/validate.py) and write result."""
    def descs(r):
        return [(f"p{i}", {"kind": "distributed", "dtype": "<f8", "shape": [ROW],
                           "global_shape": [ROW * p], "offset": [r * ROW]}) for i in range(nprov)]
    sig, _ = validate.compact(descs(0))
    payloads = [(sig, np.array([r * ROW, ROW] * nprov, np.int64)) for r in range(p)]
    pend = SimpleNamespace(vid=vid, parent=parent, branch="main", step=0, message="", attrs={},
                           t0=time.time(), descs=descs(0), boxes=None, payloads=payloads,
                           replicated={f"p{i}": False for i in range(nprov)})
    results = [{"index_checksum": "%032x" % (r * 7919 + 1), "host": f"node{r // 64:05d}",
                "logical_bytes": nprov * ROW * 8} for r in range(p)]
    return pend, results


def v1_manifest_bytes(pend, results) -> int:
    """The format-1 manifest of the same version: every rank's block per provider."""
    providers = {}
    for name, d in pend.descs:
        providers[name] = {"kind": d["kind"], "dtype": d["dtype"], "global_shape": d["global_shape"],
                           "replicated": False, "blocks": []}
    for r in range(len(results)):
        for name, d in pend.descs:
            providers[name]["blocks"].append({"rank": r, "offset": [r * ROW], "shape": d["shape"],
                                              "nbytes": ROW * 8, "digest": "%032x" % r})
    doc = {"vlcc_manifest": 1, "id": pend.vid, "providers": providers,
           "ranks": [{"rank": r, "index": f"data/{pend.vid}/r{r}.idx.json",
                      "index_checksum": x["index_checksum"], "host": x["host"]}
                     for r, x in enumerate(results)]}
    return len(seal(doc))


def commit_metadata(paths: RepoPaths, pend, results) -> tuple[int, float, float]:
    """Rank 0's share of a commit (validation of the gathered records, build,
    seal, durable writes), then a reader's open of the version; returns
    (manifest bytes, commit s, read s)."""
    t0 = time.perf_counter()
    pend.boxes = validate.validate_compact(pend.descs, pend.payloads)
    doc, side = mf.build(pend, results, mode="sync", chunk_size=4 << 20)
    for rel, raw in side.items():
        atomic_write(paths.abs(rel), raw)
    raw = seal(doc)
    atomic_write(paths.manifest(pend.vid), raw)
    t1 = time.perf_counter()
    m = load_manifest(paths.manifest(pend.vid), pend.vid, paths.root)
    r = VersionReader(paths, m)
    r.boxes("p0")                       # where every rank's block of one provider lies
    rank_indexes(paths, m)              # the rank table (verified)
    t2 = time.perf_counter()
    return len(raw), t1 - t0, t2 - t1


def exponent(xs, ys) -> float:
    lx, ly = np.log(np.asarray(xs, float)), np.log(np.maximum(np.asarray(ys, float), 1e-9))
    return float(np.polyfit(lx, ly, 1)[0]) if len(xs) > 1 else float("nan")


def simulate(ranks: list[int], providers: list[int], budget: int) -> dict:
    out = {}
    tmp = tempfile.mkdtemp(prefix="vlcc-bench-meta-")
    try:
        paths = RepoPaths(tmp)
        repo_config.create(paths)
        print(f"{'P':>8} {'L':>4} {'manifest v2':>12} {'manifest v1':>12} {'commit s':>9} {'read s':>8}")
        for nprov in providers:
            rows = []
            for p in ranks:
                if p * nprov > budget:
                    print(f"{p:>8} {nprov:>4}   (skipped: {p * nprov:,} descriptions > --budget)")
                    continue
                vid = new_version_id()
                os.makedirs(paths.data_dir(vid), exist_ok=True)
                pend, results = synth(p, nprov, vid)
                size, tc, tr = commit_metadata(paths, pend, results)
                v1 = v1_manifest_bytes(pend, results)
                side = os.path.getsize(paths.abs(f"data/{vid}/ranks.bin"))
                rows.append((p, size, v1, tc, tr, side))
                print(f"{p:>8} {nprov:>4} {size:>12,} {v1:>12,} {tc:>9.4f} {tr:>8.4f}"
                      f"   (+ rank table {side:,} B)")
                shutil.rmtree(paths.data_dir(vid))
            if len(rows) > 1:
                ps = [r[0] for r in rows]
                out[nprov] = {"exp_manifest": exponent(ps, [r[1] for r in rows]),
                              "exp_v1": exponent(ps, [r[2] for r in rows]),
                              "exp_commit": exponent(ps, [r[3] for r in rows]),
                              "exp_read": exponent(ps, [r[4] for r in rows]),
                              "largest": rows[-1]}
                e = out[nprov]
                print(f"   growth exponent in P (L={nprov}): manifest v2 {e['exp_manifest']:.2f}, "
                      f"v1 {e['exp_v1']:.2f}; commit {e['exp_commit']:.2f}, read {e['exp_read']:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def log_bench(nversions: int, ranks: list[int]) -> dict:
    out = {}
    for p in ranks:
        tmp = tempfile.mkdtemp(prefix="vlcc-bench-log-")
        try:
            paths = RepoPaths(tmp)
            repo_config.create(paths)
            parent = None
            pend, results = synth(p, 10, "0" * 16)
            pend.boxes = validate.validate_compact(pend.descs, pend.payloads)
            base, side = mf.build(pend, results, mode="sync", chunk_size=4 << 20)
            table = side[f"data/{'0' * 16}/ranks.bin"]
            for k in range(nversions):      # the same metadata, 1000 versions in one lineage
                vid = f"{k:08x}{k:08x}"
                doc = dict(base, id=vid, parent=parent, step=k,
                           ranks=dict(base["ranks"], table=f"data/{vid}/ranks.bin"))
                os.makedirs(paths.data_dir(vid), exist_ok=True)
                with open(paths.abs(f"data/{vid}/ranks.bin"), "wb") as f:
                    f.write(table)
                with open(paths.manifest(vid), "wb") as f:
                    f.write(seal(doc))
                parent = vid
            with open(paths.ref("branch", "main"), "w") as f:
                f.write(parent + "\n")
            dt = float("inf")
            for _ in range(3):                # best of 3: the machine is shared
                t0 = time.perf_counter()
                n = len(Repository(tmp).log("main"))
                dt = min(dt, time.perf_counter() - t0)
            assert n == nversions
            out[p] = dt
            print(f"log() over {nversions} versions written on P={p:>6} ranks: {dt:.3f} s")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


REAL = r"""
import json, sys, time
import numpy as np
from mpi4py import MPI
import vlcc
path, steps = sys.argv[1], int(sys.argv[2])
comm = MPI.COMM_WORLD
arrs = [np.full(1024, comm.rank + i, np.float64) for i in range(10)]
with vlcc.Checkpointer(path, comm) as ck:
    for i, a in enumerate(arrs):
        ck.register(f"p{i}", a, global_shape=(1024 * comm.size,), offset=(1024 * comm.rank,))
    tc = []
    for s in range(steps):
        for a in arrs:
            a += 1
        comm.Barrier(); t0 = time.perf_counter()
        v = ck.checkpoint(step=s)
        comm.Barrier(); tc.append(time.perf_counter() - t0)
    comm.Barrier(); t0 = time.perf_counter()
    ck.restore(v)
    comm.Barrier(); tr = time.perf_counter() - t0
if comm.rank == 0:
    import os
    size = os.path.getsize(os.path.join(path, "versions", v.id + ".json"))
    print(json.dumps({"ranks": comm.size, "commit": float(np.median(tc)), "restore": tr,
                      "manifest": size}))
"""


def real(ranks: list[int], steps: int) -> dict:
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    out = {}
    for n in ranks:
        tmp = tempfile.mkdtemp(prefix="vlcc-bench-real-")
        try:
            res = subprocess.run([mpiexec, "-n", str(n), sys.executable, "-c", REAL, tmp, str(steps)],
                                 capture_output=True, text=True, timeout=1800,
                                 env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                                     [os.path.dirname(HERE), os.environ.get("PYTHONPATH", "")])))
            if res.returncode != 0:
                print(f"{n} ranks failed: {res.stderr[-500:]}")
                continue
            rec = json.loads(res.stdout.strip().splitlines()[-1])
            out[n] = rec
            print(f"{n:>4} ranks (oversubscribed on {os.cpu_count()} cores): commit "
                  f"{rec['commit'] * 1e3:8.1f} ms  restore {rec['restore'] * 1e3:8.1f} ms  "
                  f"manifest {rec['manifest']:,} B")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sim-ranks", default="100,1000,10000,100000")
    ap.add_argument("--providers", default="10,100")
    ap.add_argument("--budget", type=int, default=2_000_000,
                    help="skip simulated (P, L) with more rank-provider descriptions than this "
                         "(rank 0 holds them all during validation: memory)")
    ap.add_argument("--real", default="", help="rank counts for real mpiexec runs, e.g. 1,2,4,8")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--log-versions", type=int, default=1000)
    a = ap.parse_args()
    ints = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
    rl = real(ints(a.real), a.steps) if a.real else {}
    sim = simulate(ints(a.sim_ranks), ints(a.providers), a.budget)
    logs = log_bench(a.log_versions, [16, 16384])
    parts = []
    for nprov, e in sim.items():
        p, size, v1, tc, tr, side = e["largest"]
        parts.append(f"L={nprov}: manifest exponent {e['exp_manifest']:.2f} (v1 {e['exp_v1']:.2f}), "
                     f"at P={p:,} {size:,} B vs v1 {v1:,} B ({v1 / size:.0f}x), commit {tc:.3f} s "
                     f"(exp {e['exp_commit']:.2f})")
    if len(logs) == 2:
        (p1, t1), (p2, t2) = sorted(logs.items())
        parts.append(f"log(1000) P={p2}/P={p1} time ratio {t2 / t1:.2f}")
    if rl:
        lo, hi = min(rl), max(rl)
        parts.append(f"real {lo}->{hi} ranks: manifest {rl[lo]['manifest']}->{rl[hi]['manifest']} B, "
                     f"commit {rl[lo]['commit'] * 1e3:.1f}->{rl[hi]['commit'] * 1e3:.1f} ms")
    print("SUMMARY bench_metadata: " + "; ".join(parts))


if __name__ == "__main__":
    from vlcc.comm.abort import abort_on_error
    abort_on_error()   # an error on one rank ends every rank (no rank left waiting)
    main()
