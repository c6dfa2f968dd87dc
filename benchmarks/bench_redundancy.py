"""Redundancy of the node-local tier (issue 28, part A), measured in one run.

Runs itself under ``mpiexec -n R`` (default 6 ranks, each its own simulated
node via VLCC_NODE_ID, so ``rs:4+2`` has a full group of 6) and prints:

* encoding cost per checkpoint: async checkpoints with ``persist="never"``,
  ``wait()`` after each; the time per checkpoint (barrier to committed) for
  partner / xor / rs:4+2 against the same run's local write alone
  (``redundancy="none"``), and the time in ``checkpoint()`` itself (what the
  application waits for: the encoding runs in the flusher thread);
* rebuild of one lost node: its node-local directory is removed, a restart
  restores the newest version; the time to rebuild the lost node's files
  (gather shares, decode, check, write) against reading the same bytes from
  the persistent tier (its pages dropped from the page cache first:
  posix_fadvise DONTNEED).

Goals: encoding ≤ 1.3× (xor) and ≤ 1.6× (rs:4+2) of the local write alone.
Last line: SUMMARY. (``--worker`` is the job under mpiexec; it prints JSON.)
i28b adds the files-per-version part as its own functions."""

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

SCHEMES = ["none", "partner", "xor", "rs:4+2"]


# -- encoding cost ----------------------------------------------------------------------------
def encode_costs(comm, base: str, local: str, mib: float, rounds: int) -> dict:
    """Per scheme: median seconds per checkpoint (to committed) and in checkpoint(),
    and the median of the per-round ratios to the local write alone. The
    contenders run interleaved, in a rotated order each round, so the machine's
    noise hits all of them alike."""
    import numpy as np
    import vlcc
    n = int(mib * (1 << 20)) // 8
    cks, arrays = {}, {}
    for red in SCHEMES:
        repo = os.path.join(base, f"repo-{red}")
        arrays[red] = u = np.random.default_rng(comm.rank).random(n)
        cks[red] = ck = vlcc.Checkpointer(repo, comm, mode="async", local_dir=local,
                                          redundancy=red, persist="never", group_size=comm.size)
        ck.register("u", u, global_shape=(n * comm.size,), offset=(n * comm.rank,))
    from vlcc.engine.resilience import protect
    total = {r: [] for r in SCHEMES}
    call = {r: [] for r in SCHEMES}
    phases = {r: [] for r in SCHEMES}      # per round: max over ranks of each protect phase
    for i in range(rounds + 1):
        order = SCHEMES[i % len(SCHEMES):] + SCHEMES[:i % len(SCHEMES)]
        for red in order:
            u = arrays[red]
            u[: n // 4] += 1.0                  # a changing state
            comm.Barrier()
            t0 = time.perf_counter()
            cks[red].checkpoint(step=i)
            t1 = time.perf_counter()
            cks[red].wait()
            comm.Barrier()
            t2 = time.perf_counter()
            if i:                                # the first round is a warm-up
                call[red].append(comm.allreduce(t1 - t0, op=_max()))
                total[red].append(t2 - t0)
                got = comm.gather(dict(protect.LAST))
                if comm.rank == 0:
                    phases[red].append({k: max(g.get(k, 0.0) for g in got)
                                        for k in set().union(*got)})
    for ck in cks.values():
        ck.close()
    med = statistics.median
    return {r: {"total": med(total[r]), "call": med(call[r]),
                "ratio": med(a / b for a, b in zip(total[r], total["none"])),
                "call_ratio": med(a / b for a, b in zip(call[r], call["none"])),
                "phases": {k: med(p.get(k, 0.0) for p in phases[r])
                           for k in set().union(*phases[r])} if phases[r] else {}}
            for r in SCHEMES}


def _max():
    from mpi4py import MPI
    return MPI.MAX


# -- rebuild ----------------------------------------------------------------------------------
def rebuild_cost(comm, base: str, local: str, mib: float, red: str) -> dict:
    """Lose the last node's directory; restore; rebuild time vs a read of the same bytes."""
    import numpy as np
    import vlcc
    n = int(mib * (1 << 20)) // 8
    repo = os.path.join(base, f"repo-{red}")
    lost = comm.size - 1
    if comm.rank == 0:      # the lost node's store of this repository (the others' stay)
        from vlcc.engine.resilience.store import store_key
        shutil.rmtree(os.path.join(local, f"node-{lost}", f"vlcc-store-{store_key(repo)}"))
    comm.Barrier()
    u = np.zeros(n)
    ck = vlcc.Checkpointer(repo, comm, mode="async", local_dir=local, redundancy=red,
                           persist="never", group_size=comm.size)
    ck.register("u", u, global_shape=(n * comm.size,), offset=(n * comm.rank,))
    comm.Barrier()
    t0 = time.perf_counter()
    v = ck.restore()
    t_restore = time.perf_counter() - t0
    ck.close()
    with open(os.path.join(repo, "data", v.id, "rebuilt.json")) as f:
        rec = json.load(f)
    # the same bytes from the persistent tier: the lost rank's files (now there)
    read = 0.0
    if comm.rank == 0:
        d = os.path.join(repo, "data", v.id)
        # the lost node's file (format 4 node files: node index = rank here)
        files = [os.path.join(d, f"n{lost}.idx.json")]
        for dp, _ds, fs in os.walk(os.path.join(d, f"n{lost}.bp")):
            files += [os.path.join(dp, f) for f in fs]
        for p in files:          # cold: the written (fsynced) pages leave the page cache
            fd = os.open(p, os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)
        t0 = time.perf_counter()
        for p in files:
            with open(p, "rb") as fh:
                while fh.read(1 << 22):
                    pass
        read = time.perf_counter() - t0
    read = comm.bcast(read)
    return {"rebuild": rec["rebuild_seconds"], "recover": rec["seconds"], "restore": t_restore,
            "read": read, "rebuilt_nodes": rec["rebuilt_nodes"]}


def worker(args) -> None:
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    os.environ["VLCC_NODE_ID"] = str(comm.rank)     # one simulated node per rank
    base = comm.bcast(tempfile.mkdtemp(prefix="vlcc-bench-red-") if comm.rank == 0 else None)
    local = comm.bcast(tempfile.mkdtemp(prefix="vlcc-bench-red-local-", dir=args.local)
                       if comm.rank == 0 else None)
    try:
        res = {"encode": encode_costs(comm, base, local, args.mib, args.rounds)}
        res["rebuild"] = {red: rebuild_cost(comm, base, local, args.mib, red)
                          for red in ("partner", "xor", "rs:4+2")}
    finally:
        comm.Barrier()
        if comm.rank == 0:
            shutil.rmtree(base, ignore_errors=True)
            shutil.rmtree(local, ignore_errors=True)
    if comm.rank == 0:
        print("RESULT " + json.dumps(res), flush=True)


def report(res: dict, ranks: int, mib: float) -> list[str]:
    enc, out = res["encode"], []
    out.append(f"encoding, {ranks} nodes x {mib:g} MiB, per checkpoint (medians; ratio: median "
               f"of the per-round ratios to 'none', interleaved), async:")
    for red in SCHEMES:
        e = enc[red]
        out.append(f"  {red:<8} to committed {e['total'] * 1e3:8.1f} ms ({e['ratio']:.2f}x)"
                   f"   in checkpoint() {e['call'] * 1e3:7.1f} ms ({e['call_ratio']:.2f}x)")
        if e.get("phases") and red != "none":
            out.append("           protect, ms (median of the slowest rank per round): " + ", ".join(
                f"{k} {e['phases'][k] * 1e3:.1f}" for k in
                ("describe", "read", "send", "encode", "forward", "digests", "write")
                if k in e["phases"]))
    out.append("rebuild of one lost node (restart):")
    for red, r in res["rebuild"].items():
        out.append(f"  {red:<8} rebuild {r['rebuild'] * 1e3:7.1f} ms  whole recovery "
                   f"{r['recover'] * 1e3:7.1f} ms  restore {r['restore'] * 1e3:7.1f} ms  "
                   f"read of the same bytes {r['read'] * 1e3:6.1f} ms "
                   f"(rebuild/read {r['rebuild'] / max(r['read'], 1e-9):.1f}x)")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", type=int, default=6)
    ap.add_argument("--mib", type=float, default=16.0, help="state per rank")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--local", default="/dev/shm" if os.path.isdir("/dev/shm") else None,
                    help="where the node-local directories go (default /dev/shm, as vlcc's "
                         "default local tier); the repositories go to the temp dir")
    ap.add_argument("--worker", action="store_true")
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    cmd = [mpiexec, "-n", str(args.ranks), sys.executable, os.path.abspath(__file__), "--worker",
           "--mib", str(args.mib), "--rounds", str(args.rounds)]
    if args.local:
        cmd += ["--local", args.local]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    line = [l for l in p.stdout.splitlines() if l.startswith("RESULT ")]
    if p.returncode != 0 or not line:
        print(p.stdout + p.stderr, file=sys.stderr)
        print(f"SUMMARY bench_redundancy: FAILED (exit {p.returncode})")
        sys.exit(1)
    res = json.loads(line[0][len("RESULT "):])
    for l in report(res, args.ranks, args.mib):
        print(l)
    enc = res["encode"]
    x, rs, pa = (enc[r]["ratio"] for r in ("xor", "rs:4+2", "partner"))
    blk = max(enc[r]["call_ratio"] for r in SCHEMES)
    rb = res["rebuild"]["xor"]
    print(f"SUMMARY bench_redundancy: encode vs local write alone partner {pa:.2f}x, xor {x:.2f}x "
          f"(goal <=1.3), rs:4+2 {rs:.2f}x (goal <=1.6); in checkpoint() <= {blk:.2f}x; "
          f"xor rebuild of 1 node {rb['rebuild'] * 1e3:.0f} ms vs read {rb['read'] * 1e3:.0f} ms")


if __name__ == "__main__":
    from vlcc.comm.abort import abort_on_error
    abort_on_error()   # an error on one rank ends every rank (no rank left waiting)
    main()
