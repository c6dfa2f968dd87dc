"""The vlcc demo (`make demo`): crash, restart on another rank count, bit-exact.

1. reference: heat.py on 2 ranks, uninterrupted, no checkpoints;
2. the same run on 2 ranks checkpointing every --every steps, killed with
   SIGKILL (the whole mpiexec process group) once a version is committed;
3. restart on 3 ranks from the newest committed version, run to the end;
4. compare the final fields bit for bit and print the repository's log.

Exit status 0 only if the restarted result equals the reference exactly.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
try:
    import vlcc
except ImportError:
    sys.path.insert(0, ROOT)
    import vlcc
# Running heat.py under mpiexec (to completion, or killed) is shared with the
# tests: it lives in tests/heat_harness.py so the tests import nothing from
# examples/; the demo reuses it from there.
sys.path.insert(0, os.path.join(ROOT, "tests"))
from heat_harness import run_and_kill, run_heat  # noqa: E402


def print_log(repo: str) -> None:
    """`vlcc log REPO` through the CLI; the same facts from vlcc.Repository if the CLI fails."""
    try:
        p = subprocess.run([sys.executable, "-m", "vlcc.cli", "log", repo], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=120, cwd=ROOT)
        if p.returncode == 0:
            print(p.stdout, end="")
            return
        print(f"(vlcc CLI failed with rc={p.returncode}: {p.stdout.strip()[-300:]}; "
              f"printing the log through vlcc.Repository)")
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"(vlcc CLI unavailable: {exc}; printing the log through vlcc.Repository)")
    for v in vlcc.Repository(repo).log():
        print(f"version {v.id}  parent {v.parent or '-'}  branch {v.branch}  step {v.step}  "
              f"ranks {v.nranks}  {v.message}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nx", type=int, default=256)
    ap.add_argument("--ny", type=int, default=192)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--delay", type=float, default=0.004, help="seconds of sleep per step")
    ap.add_argument("--ranks", type=int, default=2, help="ranks of the reference and the killed run")
    ap.add_argument("--restart-ranks", type=int, default=3)
    ap.add_argument("--kill-after", type=int, default=2, help="kill once this many versions are committed")
    ap.add_argument("--workdir", help="keep the run here, the repository in WORKDIR/heat "
                                      "(default: a temporary directory, removed; make demo: runs/demo)")
    a = ap.parse_args(argv)

    t_start = time.monotonic()
    work = os.path.abspath(a.workdir) if a.workdir else tempfile.mkdtemp(prefix="vlcc-demo-")
    os.makedirs(work, exist_ok=True)
    repo = os.path.join(work, "heat")
    if os.path.exists(repo):
        shutil.rmtree(repo)
    grid = ["--nx", str(a.nx), "--ny", str(a.ny), "--steps", str(a.steps)]
    ref, out = os.path.join(work, "reference.npy"), os.path.join(work, "restarted.npy")
    try:
        print(f"== 1. reference: {a.ny}x{a.nx} grid, {a.steps} steps on {a.ranks} ranks, uninterrupted")
        t = time.monotonic()
        print(run_heat(a.ranks, *grid, "--out", ref), end="")
        print(f"   ({time.monotonic() - t:.1f} s)")

        print(f"== 2. checkpointed run on {a.ranks} ranks (every {a.every} steps), "
              f"SIGKILL of the process group after {a.kill_after} commit(s)")
        t = time.monotonic()
        k = run_and_kill(a.ranks, repo, *grid, "--every", str(a.every), "--delay", str(a.delay),
                         min_versions=a.kill_after)
        print(k["output"], end="")
        print(f"   killed (rc={k['rc']}) with {k['versions']} committed version(s), newest at step "
              f"{k['latest_step']} ({time.monotonic() - t:.1f} s)")
        if k["latest_step"] is not None and k["latest_step"] >= a.steps:
            print("   note: the run had already finished when it was killed")

        print(f"== 3. restart on {a.restart_ranks} ranks from the newest committed version")
        t = time.monotonic()
        print(run_heat(a.restart_ranks, *grid, "--every", str(a.every), "--repo", repo,
                       "--restart", "--out", out), end="")
        print(f"   ({time.monotonic() - t:.1f} s)")

        print("== 4. compare with the reference")
        u_ref, u = np.load(ref), np.load(out)
        same = u_ref.shape == u.shape and np.array_equal(u_ref, u)
        if same:
            print(f"   BIT-EXACT: restarted result on {a.restart_ranks} ranks == uninterrupted "
                  f"reference on {a.ranks} ranks ({u.size} values)")
        else:
            diff = np.abs(u_ref - u).max() if u_ref.shape == u.shape else "shape differs"
            print(f"   MISMATCH: restarted result differs from the reference (max |diff| {diff})")
        print(f"== vlcc log {repo}")
        print_log(repo)
        print(f"== demo {'passed' if same else 'FAILED'} in {time.monotonic() - t_start:.1f} s")
        if not a.workdir:
            print(f"(the repository was in a temporary directory, removed now; "
                  f"--workdir DIR keeps it in DIR/heat, as `make demo` does in runs/demo)")
        else:
            rel = os.path.relpath(repo)
            vlcc_cmd = os.path.relpath(os.path.join(os.path.dirname(sys.executable), "vlcc"))
            print(f"The repository is kept in {rel}; inspect it with the venv's vlcc "
                  f"(or `source {os.path.dirname(vlcc_cmd)}/activate` first):\n"
                  f"   {vlcc_cmd} log {rel}\n   {vlcc_cmd} show {rel}@step:{a.steps}\n"
                  f"   {vlcc_cmd} verify {rel}")
        return 0 if same else 1
    finally:
        if not a.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
