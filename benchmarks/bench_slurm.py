#!/usr/bin/env python
"""Cost of a preemption on a real (local) SLURM cluster, in one run.

    python benchmarks/bench_slurm.py [--steps 60] [--sleep 0.1] [--every 20] [--ranks 2]
                                     [--cred-expire 10] [--signal-at 10]

Starts slurm/local/cluster.sh in a temporary directory (root, slurm-wlm + munge),
submits slurm/examples/preemptible.sbatch twice and stops the cluster at the end:

* uninterrupted: submit → COMPLETED;
* preempted: USR1 to the batch shell at step SIGNAL_AT (what --signal=B:USR1@N does),
  then: signal → job no longer running (checkpoint durable + scontrol requeue + exit),
  → rerun started (SLURM holds a requeued job about cred_expire seconds), → COMPLETED.

Times are taken by polling (0.05 s) the job's output and squeue. Prints the phases,
the preempted/uninterrupted ratio and a final SUMMARY line.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLUSTER = os.path.join(ROOT, "slurm", "local", "cluster.sh")
TEMPLATE = os.path.join(ROOT, "slurm", "examples", "preemptible.sbatch")
BIN = os.path.dirname(os.path.abspath(sys.executable))


def free_port() -> int:
    for p in range(26817, 27817, 2):
        try:
            for q in (p, p + 1):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", q))
            return p
        except OSError:
            continue
    raise SystemExit("no free port pair")


def sh(env, *cmd) -> str:
    return subprocess.run(cmd, env=env, check=True, capture_output=True, text=True,
                          timeout=120, cwd=ROOT).stdout


def read(path) -> str:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def until(pred, timeout=600.0, every=0.05) -> float:
    t0 = time.time()
    while not pred():
        if time.time() - t0 > timeout:
            raise SystemExit("timeout")
        time.sleep(every)
    return time.time()


def queued(env, job) -> bool:
    return bool(sh(env, "squeue", "-h", "-j", job).strip())


def running(env, job) -> bool:
    return sh(env, "squeue", "-h", "-j", job, "-o", "%T").strip() == "RUNNING"


def submit(env, work, name, a) -> tuple[str, str, float]:
    out = os.path.join(work, f"{name}.out")
    t0 = time.time()
    job = sh(dict(env, VLCC_REPO=os.path.join(work, name), STEPS=str(a.steps), EVERY=str(a.every),
                  SLEEP=str(a.sleep)),
             "sbatch", "--parsable", f"--ntasks={a.ranks}", f"--output={out}", TEMPLATE).strip()
    return job, out, t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--sleep", type=float, default=0.1)
    p.add_argument("--every", type=int, default=20)
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--cred-expire", type=int, default=10)
    p.add_argument("--signal-at", type=int, default=10)
    a = p.parse_args()
    if os.geteuid() != 0:
        print("SUMMARY bench_slurm skipped: needs root for the local cluster")
        return 0
    work = tempfile.mkdtemp(prefix="vlcc-bench-slurm-")
    os.chmod(work, 0o755)
    state = os.path.join(work, "cluster")
    env = dict(os.environ, VLCC_SLURM_DIR=state, VLCC_SLURM_PORT=str(free_port()),
               VLCC_SLURM_CRED_EXPIRE=str(a.cred_expire), SLURM_CONF=os.path.join(state, "slurm.conf"),
               VLCC_ROOT=ROOT, VLCC_PYTHON=sys.executable, VLCC_MPIEXEC=os.path.join(BIN, "mpiexec"))
    try:
        t = time.time()
        up = subprocess.run([CLUSTER, "up"], env=env, capture_output=True, text=True, timeout=180)
        if up.returncode == 3:
            print(f"SUMMARY bench_slurm skipped: {up.stderr.strip()}")
            return 0
        if up.returncode != 0:
            raise SystemExit(up.stderr)
        print(f"cluster up: {time.time() - t:.1f} s")

        job, out, t0 = submit(env, work, "plain", a)
        t_end = until(lambda: not queued(env, job))
        plain = t_end - t0
        print(f"uninterrupted: {plain:.1f} s submit→done ({a.steps} steps, {a.ranks} ranks)")

        job, out, t0 = submit(env, work, "preempted", a)
        until(lambda: f"step {a.signal_at}\n" in read(out))
        t_sig = time.time()
        sh(env, "scancel", "--signal=USR1", "--batch", job)
        t_gone = until(lambda: not running(env, job))
        t_rerun = until(lambda: "restart 1 on" in read(out))
        t_done = until(lambda: not queued(env, job))
        total = t_done - t0
        text = read(out)
        assert "checkpoint at step" in text and f"done at step {a.steps}" in text, text
        print(f"preempted at step {a.signal_at}: signal → checkpoint durable, requeued, job stopped: "
              f"{t_gone - t_sig:.1f} s")
        print(f"  requeue → rerun started: {t_rerun - t_gone:.1f} s (cred_expire={a.cred_expire} s)")
        print(f"  submit → done: {total:.1f} s; cost of the preemption: {total - plain:.1f} s")
        ratio = total / plain
        print(f"SUMMARY bench_slurm preempted/uninterrupted {ratio:.2f}x; signal→stopped "
              f"{t_gone - t_sig:.1f} s; requeue hold {t_rerun - t_gone:.1f} s (cred_expire {a.cred_expire} s)")
        return 0
    finally:
        subprocess.run([CLUSTER, "down"], env=env, capture_output=True, text=True, timeout=120)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
