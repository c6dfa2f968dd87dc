"""Running examples/heat/heat.py under mpiexec for the tests: to completion
(``run_heat``) or killed with SIGKILL once versions are committed
(``run_and_kill``). tests/test_heat_demo.py drives it; examples/heat/run_demo.py
(`make demo`) reuses it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, ".."))  # the repository
HEAT = os.path.join(ROOT, "examples", "heat", "heat.py")
try:
    import vlcc
except ImportError:
    sys.path.insert(0, ROOT)
    import vlcc
from vlcc._mpi import without_launcher  # noqa: E402 - vlcc found above

MPIEXEC = os.path.join(os.path.dirname(sys.executable), "mpiexec")
TIMEOUT = 300  # seconds for any one mpiexec run: a hang fails, it does not block


def heat_cmd(nranks: int, *args: str) -> list[str]:
    # python -m mpi4py: an uncaught exception on one rank aborts the job instead of hanging it
    return [MPIEXEC, "-n", str(nranks), sys.executable, "-m", "mpi4py", HEAT, *args]


def job_env() -> dict:
    """The environment for our mpiexec: without the variables of a surrounding MPI launch."""
    return without_launcher()


def run_heat(nranks: int, *args: str, timeout: float = TIMEOUT) -> str:
    """Run heat.py to completion; return its output (raise on failure)."""
    p = subprocess.Popen(heat_cmd(nranks, *args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, cwd=ROOT, env=job_env(), start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)   # mpiexec and every rank it started
        out, _ = p.communicate()
        raise RuntimeError(f"heat.py on {nranks} ranks timed out after {timeout} s:\n{out}") from None
    if p.returncode != 0:
        raise RuntimeError(f"heat.py on {nranks} ranks failed (rc={p.returncode}):\n{out}")
    return out


def committed(repo: str) -> list:
    """Versions of ``repo`` visible now (none while the repository does not exist yet)."""
    try:
        return vlcc.Repository(repo).log()
    except vlcc.VlccError:
        return []


def run_and_kill(nranks: int, repo: str, *args: str, min_versions: int = 1,
                 timeout: float = TIMEOUT) -> dict:
    """Start heat.py with checkpoints into ``repo`` in its own session, wait
    until ``min_versions`` versions are committed, then SIGKILL its whole
    process group. Returns what was committed at the kill."""
    log_path = os.path.join(os.path.dirname(os.path.abspath(repo)), "killed-run.log")
    with open(log_path, "w") as log:
        p = subprocess.Popen(heat_cmd(nranks, "--repo", repo, *args), stdout=log,
                             stderr=subprocess.STDOUT, cwd=ROOT, env=job_env(),
                             start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while len(committed(repo)) < min_versions:
            if p.poll() is not None:
                raise RuntimeError(f"heat.py ended (rc={p.returncode}) before it could be killed; "
                                   f"output:\n{open(log_path).read()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no version committed in {timeout} s")
            time.sleep(0.02)
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=60)
    vs = committed(repo)
    return {"rc": p.returncode, "versions": len(vs), "latest_step": vs[0].step if vs else None,
            "output": open(log_path).read()}
