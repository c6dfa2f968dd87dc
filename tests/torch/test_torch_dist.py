"""vlcc.torch on 2 processes with torch.distributed (gloo, launched by torchrun,
no MPI): DDP replicas stored once, DCP resharding 1 → 2 and 2 → 1, DeepSpeed ZeRO-1
through vlcc (a partition file per rank), Checkpointer
versions loaded on another world size. Phases: tests/scripts/torch_dist.py."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import TESTS_DIR

from vlcc._mpi import without_launcher

pytest.importorskip("torch")

HERE = TESTS_DIR
SCRIPT = os.path.join(HERE, "scripts", "torch_dist.py")
TIMEOUT = 300


def _env():
    # a surrounding mpiexec must not leak into the torchrun children
    env = without_launcher()
    env["OMP_NUM_THREADS"] = "1"
    return env


def _run(args, what):
    proc = subprocess.run(args, env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, f"{what} failed (rc={proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc.stdout


def _torchrun(phase, root):
    return _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                 SCRIPT, phase, root], f"torchrun phase {phase}")


def test_two_processes_gloo_resharding(tmp_path):
    root = str(tmp_path)
    assert "phase save ok" in _torchrun("save", root)
    # the 1-process phase runs here (torch is imported already); it must see no process group
    import torch.distributed as dist
    assert not dist.is_initialized()
    sys.path.insert(0, os.path.dirname(SCRIPT))
    try:
        import torch_dist
    finally:
        sys.path.remove(os.path.dirname(SCRIPT))
    torch_dist.phase_load1(root)
