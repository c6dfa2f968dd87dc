"""SIGINT to one of 3 ranks ends the whole job in bounded time (vlcc/comm/
protocol.py): an interrupt inside a provider's work is agreed like any error;
one inside an MPI call or between two collectives ends the job with
MPI_Abort. Real mpiexec -n 3, real signals; a hang fails by timeout."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

import vlcc
from conftest import TESTS_DIR, MPIEXEC
from vlcc._mpi import without_launcher

ROOT = os.path.dirname(TESTS_DIR)

_JOB = r"""
import os, sys
import numpy as np
import vlcc
from mpi4py import MPI
comm = MPI.COMM_WORLD
path, pids = sys.argv[1], sys.argv[2]
u = np.zeros(200_000) + comm.rank
with vlcc.Checkpointer(path, comm=comm) as ck:
    ck.register("u", u, global_shape=(200_000 * comm.size,), offset=(200_000 * comm.rank,))
    ck.register("step", vlcc.ValueProvider(lambda: 1, lambda v: None))
    for k in range(1_000_000):
        u += 1
        ck.checkpoint(step=k)
        if k == 2:
            open(os.path.join(pids, f"pid{comm.rank}"), "w").write(str(os.getpid()))
        if k % 3 == 0:
            ck.restore()
"""


@pytest.mark.parametrize("trial", range(6))
def test_sigint_to_one_rank_ends_the_job(tmp_path, trial):
    script = tmp_path / "job.py"
    script.write_text(_JOB)
    repo, pids = tmp_path / "r", tmp_path / "pids"
    pids.mkdir()
    env = dict(without_launcher(), PYTHONPATH=ROOT)
    p = subprocess.Popen([MPIEXEC, "-n", "3", sys.executable, str(script), str(repo), str(pids)],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while len(os.listdir(pids)) < 3:
            assert p.poll() is None and time.time() < deadline, "the job did not start"
            time.sleep(0.1)
        time.sleep(0.05 + 0.37 * trial)          # a different moment of the loop each trial
        victim = int((pids / f"pid{1 + trial % 2}").read_text())
        os.kill(victim, signal.SIGINT)
        try:
            out, err = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            pytest.fail("SIGINT to one rank left the job hanging")
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode != 0, err[-2000:]
    assert "KeyboardInterrupt" in err or "SIGINT" in err, err[-2000:]
    vlcc.Repository(repo).verify()                # committed versions stay intact


_NESTED = r"""
import os, signal, sys
from mpi4py import MPI
from vlcc.comm import protocol
comm = MPI.COMM_WORLD.Dup()
inner = MPI.COMM_WORLD.Dup()

def local():
    protocol.agree(inner, lambda: 1)
    if comm.rank == 1:
        os.kill(os.getpid(), signal.SIGINT)    # between two nested collectives
        sum(range(100_000))                      # (Python would raise here, skipping the next one)
    protocol.agree(inner, lambda: 2)
    return comm.rank

try:
    protocol.agree(comm, local)
except KeyboardInterrupt:
    print(f"rank {comm.rank}: KeyboardInterrupt.", flush=True)
    sys.exit(0)
except Exception as exc:
    print(f"rank {comm.rank}: {type(exc).__name__}: {exc}.", flush=True)
    sys.exit(0)
print(f"rank {comm.rank}: no error.", flush=True)
"""


def test_sigint_between_nested_collectives_is_agreed(tmp_path):
    """A SIGINT landing in a local part between two nested collectives (a
    node's gather inside an agreed write) does not make the interrupted rank
    skip the second one: it is raised on every rank at the outer agreement.
    Before, the other ranks waited in the nested collective forever."""
    script = tmp_path / "nested.py"
    script.write_text(_NESTED)
    env = dict(without_launcher(), PYTHONPATH=ROOT)
    p = subprocess.run([MPIEXEC, "-n", "3", sys.executable, str(script)], env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    # (the launcher may join the ranks' lines: each ends with a period)
    said = dict(re.findall(r"rank (\d): ([^.]*)\.", p.stdout))
    assert said == {"0": "CollectiveError: rank 1: KeyboardInterrupt on this rank",
                    "1": "KeyboardInterrupt",
                    "2": "CollectiveError: rank 1: KeyboardInterrupt on this rank"}, p.stdout
