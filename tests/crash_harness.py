"""The crash-trial engine (Promise 1: atomic versions under SIGKILL).

A trial starts a checkpointing job (``mpiexec -n RANKS``, one version per step
whose content is a function of the step), kills the whole mpiexec process group
with SIGKILL at a random moment, then checks the repository from outside
(vlcc.Repository, no MPI):

* every listed version restores bit-exact: ``read`` gives the content its step
  defines, and ``verify`` passes on it;
* every version the job reported as committed (``checkpoint()`` had returned)
  is listed: nothing committed is lost;
* the lineage of ``main`` is steps K, K-1, ..., 1 without gaps, and it holds
  every listed version: no partial version is ever listed.

The random moment: after a random number (0..max_commits) of commits, a random
extra delay of up to ``jitter`` seconds (about one checkpoint), so kills land in
every phase (capture, data write, fsync, manifest, ref move).

This file is also the job: ``python -m mpi4py tests/crash_harness.py --worker
REPO ...``. tests/commit/test_crash.py drives it; benchmarks/crash_trials.py
(``--trials 100``) reuses it.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, ".."))  # the repository
THIS = os.path.abspath(__file__)
MPIEXEC = os.path.join(os.path.dirname(sys.executable), "mpiexec")
JOB_TIMEOUT = 120.0   # seconds: a trial whose job neither commits nor dies is a failure

try:
    import vlcc
except ImportError:
    sys.path.insert(0, ROOT)
    import vlcc
from vlcc._mpi import without_launcher  # noqa: E402 - vlcc found above

_A = np.uint64(0x9E3779B97F4A7C15)
_B = np.uint64(0xD1B54A32D192ED03)


def content(step: int, lo: int, hi: int) -> np.ndarray:
    """The stored array of version ``step`` at global indices lo..hi-1 (uint64)."""
    idx = np.arange(lo, hi, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return idx * _A + np.uint64(step) * _B


# -- the job ------------------------------------------------------------------
def worker(repo: str, total_bytes: int, steps: int, resume: bool) -> int:
    """Checkpoint ``steps`` versions (0: until killed) of a distributed uint64
    array of ``total_bytes`` (split over the ranks) plus the step as a value;
    rank 0 prints ``committed STEP ID`` after each checkpoint() returned.
    With ``resume`` it first restores the newest version (any rank count)."""
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    total = max(comm.size, total_bytes // 8)
    base, extra = divmod(total, comm.size)
    lo = comm.rank * base + min(comm.rank, extra)
    n = base + (1 if comm.rank < extra else 0)
    x = np.zeros(n, np.uint64)
    state = {"step": 0}
    ck = vlcc.Checkpointer(repo, comm=comm)
    ck.register("crash/x", x, global_shape=(total,), offset=(lo,))
    ck.register("crash/step", vlcc.ValueProvider(get=lambda: state["step"],
                                                 set=lambda v: state.__setitem__("step", v)))
    if resume and not ck.log():
        if comm.rank == 0:
            print("resumed 0 -", flush=True)
    elif resume:
        v = ck.restore()
        ok = v.step == state["step"] and np.array_equal(x, content(v.step, lo, lo + n))
        if not comm.allreduce(ok, op=MPI.LAND):
            raise SystemExit(f"resume: version {v.id} does not hold the content of its step {v.step}")
        if comm.rank == 0:
            print(f"resumed {v.step} {v.id}", flush=True)
    first = state["step"] + 1
    step = first
    while steps <= 0 or step < first + steps:
        x[:] = content(step, lo, lo + n)
        state["step"] = step
        v = ck.checkpoint(step=step, message=f"crash trial step {step}", attrs={"step": step})
        # Async mode (VLCC_MODE=async): checkpoint() returns a pending version;
        # only what wait() returns is known to be committed.
        done = [v] if not v.pending else (ck.wait() if step % 2 == 0 else [])
        if comm.rank == 0:
            for c in done:
                print(f"committed {c.step} {c.id}", flush=True)
        step += 1
    ck.close()
    return 0


def _env() -> dict:
    """Environment for a nested mpiexec: without the variables of a surrounding MPI launch."""
    return without_launcher()


def job_cmd(nranks: int, repo: str, total_bytes: int, steps: int = 0,
            resume: bool = False) -> list[str]:
    """The job: ``total_bytes`` per version split over ``nranks`` ranks."""
    cmd = [MPIEXEC, "-n", str(nranks), sys.executable, "-m", "mpi4py", THIS, "--worker", repo,
           "--total-bytes", str(total_bytes), "--steps", str(steps)]
    return cmd + (["--resume"] if resume else [])


def run_job(nranks: int, repo: str, total_bytes: int, steps: int, resume: bool = False,
            timeout: float = JOB_TIMEOUT) -> str:
    """Run the job to completion (no kill); return rank 0's output, raise on failure."""
    p = subprocess.Popen(job_cmd(nranks, repo, total_bytes, steps, resume), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=_env(),
                         start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        raise RuntimeError(f"job timed out after {timeout} s:\n{out}") from None
    if p.returncode != 0:
        raise RuntimeError(f"job failed (rc={p.returncode}):\n{out}")
    return out


def reported(out: str) -> dict[int, str]:
    """step -> version id of every ``committed STEP ID`` line (a torn last line is ignored)."""
    res = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "committed" and len(parts[2]) == 16:
            res[int(parts[1])] = parts[2]
    return res


# -- the check ------------------------------------------------------------------
def check_repo(repo: str, committed: dict[int, str]) -> dict:
    """Check the repository left by a killed job. ``committed``: what the job
    reported as committed. Returns counts and a list of problems (empty: all good)."""
    res = {"versions": 0, "intact": 0, "partial_dirs": 0, "problems": [],
           "lock_left": os.path.exists(os.path.join(repo, "refs", "branches", "main.lock"))}
    prob = res["problems"]
    if not os.path.exists(os.path.join(repo, "vlcc.json")):
        if committed:
            prob.append(f"no repository, but the job reported {len(committed)} commits")
        return res
    r = vlcc.Repository(repo)
    vs = r.log()
    res["versions"] = len(vs)
    listed = {v.id for v in vs}
    for v in vs:
        try:
            x = r.read(v, "crash/x")
            step = r.read(v, "crash/step")
            if v.step is None or step != v.step or v.attrs.get("step") != v.step:
                raise AssertionError(f"step fields disagree: manifest {v.step}, value {step}, "
                                     f"attrs {v.attrs.get('step')}")
            if not np.array_equal(x, content(v.step, 0, x.size)):
                bad = int(np.count_nonzero(x != content(v.step, 0, x.size)))
                raise AssertionError(f"content differs from step {v.step} in {bad} of {x.size} values")
            r.verify(v)
            res["intact"] += 1
        except Exception as exc:  # noqa: BLE001 - every failure is a finding
            prob.append(f"version {v.id} (step {v.step}): {type(exc).__name__}: {exc}")
    for step, vid in sorted(committed.items()):
        if vid not in listed:
            prob.append(f"version {vid} of step {step} was reported committed but is not listed")
    if vs:
        try:
            chain = r.log(branch="main")
        except Exception as exc:  # noqa: BLE001
            prob.append(f"log(branch='main') failed: {type(exc).__name__}: {exc}")
            chain = []
        steps = [v.step for v in chain]
        if steps != list(range(len(vs), 0, -1)) or {v.id for v in chain} != listed:
            prob.append(f"lineage of main is steps {steps}, expected {len(vs)}..1 covering "
                        f"all {len(vs)} listed versions")
        head = r.resolve("latest", branch="main")
        if head.step != len(vs):
            prob.append(f"latest of main is step {head.step}, expected {len(vs)}")
    data = os.path.join(repo, "data")
    for d in os.listdir(data) if os.path.isdir(data) else []:
        if d not in listed:
            res["partial_dirs"] += 1   # data of a version killed before its commit: fine, unlisted
    return res


def trial(workdir: str, rng: random.Random, *, nranks: int = 2, nbytes: int = 2 << 20,
          max_commits: int = 4, jitter: float = 0.1, restart: bool = True,
          timeout: float = JOB_TIMEOUT) -> dict:
    """One kill trial in a fresh repository under ``workdir``; returns check_repo's
    result plus the kill moment. With ``restart``, a new job then resumes on the
    killed repository and commits one more version, which is checked too."""
    repo = os.path.join(workdir, "repo")
    out_path = os.path.join(workdir, "job.out")
    k = rng.randint(0, max_commits)
    delay = rng.uniform(0.0, jitter)
    with open(out_path, "w") as out:
        p = subprocess.Popen(job_cmd(nranks, repo, nbytes * nranks), stdout=out,
                             stderr=subprocess.STDOUT, cwd=ROOT, env=_env(), start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        # wait for k commits (k=0: for the repository to exist), then the random delay
        while True:
            with open(out_path) as f:
                n = len(reported(f.read()))
            if n >= k and (k > 0 or os.path.exists(os.path.join(repo, "vlcc.json"))):
                break
            if p.poll() is not None:
                raise RuntimeError(f"job ended (rc={p.returncode}) before the kill:\n"
                                   f"{open(out_path).read()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"job made no progress in {timeout} s:\n{open(out_path).read()}")
            time.sleep(0.002)
        time.sleep(delay)
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=60)
    with open(out_path) as f:
        committed = reported(f.read())
    res = check_repo(repo, committed)
    res.update(after_commits=k, delay=delay, reported=len(committed), restarted=None)
    if restart and not res["problems"]:
        # a new job on the killed repository resumes from its newest version and
        # commits one more, whatever the kill left behind (partial data, a ref lock)
        try:
            out = run_job(nranks, repo, nbytes * nranks, steps=1, resume=True, timeout=timeout)
        except RuntimeError as exc:
            res["problems"].append(f"restart after the kill failed: {exc}")
            return res
        resumed = [line.split() for line in out.splitlines() if line.startswith("resumed ")]
        if not resumed or int(resumed[0][1]) != res["versions"]:
            res["problems"].append(f"restart resumed {resumed}, expected step {res['versions']}")
        committed.update(reported(out))
        after = check_repo(repo, committed)
        res["problems"] += [f"after restart: {pr}" for pr in after["problems"]]
        if after["versions"] != res["versions"] + 1:
            res["problems"].append(f"after restart: {after['versions']} versions, "
                                   f"expected {res['versions'] + 1}")
        res["restarted"] = after["versions"]
    return res


def run_trials(ntrials: int, seed: int, *, nranks: int = 2, nbytes: int = 2 << 20,
               jitter: float = 0.1, max_commits: int = 4, restart: bool = True,
               keep: str | None = None, echo=print) -> list[dict]:
    """``ntrials`` trials; repositories of failed trials are kept under ``keep``
    (if given). Prints one line per trial through ``echo``."""
    rng = random.Random(seed)
    results = []
    for i in range(ntrials):
        work = tempfile.mkdtemp(prefix="vlcc-crash-")
        try:
            res = trial(work, rng, nranks=nranks, nbytes=nbytes, jitter=jitter,
                        max_commits=max_commits, restart=restart)
        except Exception as exc:  # noqa: BLE001 - a trial that cannot run is a failed trial
            res = {"versions": 0, "intact": 0, "partial_dirs": 0, "lock_left": False,
                   "after_commits": None, "delay": None, "reported": 0, "restarted": None,
                   "problems": [f"{type(exc).__name__}: {exc}"]}
        ok = not res["problems"]
        results.append(res)
        if echo:
            where = "" if res["delay"] is None else \
                f"killed {res['delay'] * 1000:5.1f} ms after commit #{res['after_commits']}"
            echo(f"trial {i + 1:3d}/{ntrials}: {where}: versions {res['versions']:2d}, "
                 f"committed-intact: {res['intact']}/{res['versions']}, partial leftovers "
                 f"{res['partial_dirs']}{', ref lock left' if res['lock_left'] else ''}"
                 f"{'' if res['restarted'] is None else ', restart ok'}"
                 f"  {'ok' if ok else 'FAIL'}")
            for pr in res["problems"]:
                echo(f"    {pr}")
        if not ok and keep:
            os.makedirs(keep, exist_ok=True)
            shutil.move(work, os.path.join(keep, f"trial-{i + 1}"))
        else:
            shutil.rmtree(work, ignore_errors=True)
    return results


def summary(results: list[dict]) -> tuple[str, bool]:
    t = len(results)
    good = sum(1 for r in results if not r["problems"])
    nv = sum(r["versions"] for r in results)
    ni = sum(r["intact"] for r in results)
    partial = sum(1 for r in results if r["partial_dirs"])
    with_versions = sum(1 for r in results if r["versions"])
    locks = sum(1 for r in results if r["lock_left"])
    restarted = sum(1 for r in results if r.get("restarted") is not None)
    line = (f"summary: {t} trials, {good} fully consistent; versions intact {ni}/{nv}; "
            f"{with_versions} trials had committed versions, {partial} left partial "
            f"(unlisted) data of a killed checkpoint, {locks} a ref lock; {restarted} restarts "
            f"on the killed repository committed and checked")
    return line, good == t


def _worker_main(argv=None) -> int:
    """The job's entry point (what ``job_cmd`` runs under mpiexec)."""
    ap = argparse.ArgumentParser(description="crash-trial job (run by job_cmd under mpiexec)")
    ap.add_argument("--worker", metavar="REPO", required=True)
    ap.add_argument("--total-bytes", type=int, default=4 << 20)
    ap.add_argument("--steps", type=int, default=0)
    ap.add_argument("--resume", action="store_true")
    a = ap.parse_args(argv)
    return worker(a.worker, a.total_bytes, a.steps, a.resume)


if __name__ == "__main__":
    sys.exit(_worker_main())
