"""A whole simulated node dies mid-run (its ranks SIGKILLed, its node-local
directory removed) while the versions are on node-local tiers only
(persist="never"); the restart, on the same or another rank count, restores
bit-exact from the surviving nodes; Repository.verify / `vlcc doctor` name the
rebuilt node. Real mpiexec jobs with timeouts (tests/conftest.py run_mpi)."""

from __future__ import annotations

import json
import os
import shutil

import pytest

import vlcc
from conftest import run_mpi

STEPS = 3


def _kill_and_restart(tmp_path, red, ranks, nodes, kill, restart_ranks, lose=None):
    repo, local = str(tmp_path / "repo"), str(tmp_path / "local")
    res = run_mpi(ranks, "node_loss.py", "write", repo, local, red, nodes, STEPS, kill,
                  check=False, timeout=180)
    assert res.returncode != 0, "the killed node should have ended the job"
    committed = [l.split()[1] for l in res.stdout.splitlines() if l.startswith("COMMITTED")]
    assert committed, res.stdout + res.stderr
    for n in (lose if lose is not None else [kill]):
        shutil.rmtree(os.path.join(local, f"node-{n}"))
    out = run_mpi(restart_ranks, "node_loss.py", "restore", repo, local, red, nodes, STEPS,
                  check=False, timeout=180)
    return repo, committed[0], out


@pytest.mark.parametrize("red,ranks,nodes,restart", [
    ("partner", 2, 2, 2),
    ("xor", 3, 3, 2),
    ("rs:4+2", 3, 3, 3),
    ("xor", 3, 2, 3),          # 2 nodes of 2 and 1 ranks
])
def test_node_killed_restart_rebuilds(tmp_path, red, ranks, nodes, restart):
    kill = nodes - 1
    repo, vid, out = _kill_and_restart(tmp_path, red, ranks, nodes, kill, restart)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"OK {vid}" in out.stdout, out.stdout + out.stderr
    with open(os.path.join(repo, "data", vid, "rebuilt.json")) as f:
        rec = json.load(f)
    assert rec["rebuilt_nodes"] == [str(kill)] and rec["scheme"] == red
    r = vlcc.Repository(repo)
    res = r.verify(vid)                 # the completed version checks out, and says so
    assert f"node(s) {kill} were rebuilt from {red!r}" in res["node_local"][vid]
    notes = [f for f in r.doctor().findings if f.kind == "node-local"]
    assert any(f"node(s) {kill} were rebuilt" in f.detail for f in notes)


def test_too_many_nodes_lost_names_version_and_nodes(tmp_path):
    repo, vid, out = _kill_and_restart(tmp_path, "xor", 3, 3, 2, 3, lose=[0, 2])
    assert out.returncode != 0
    assert vid in out.stderr and "missing nodes: 0, 2" in out.stderr, out.stderr
