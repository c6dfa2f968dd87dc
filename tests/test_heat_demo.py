"""The heat example (examples/heat): results do not depend on the rank count,
and a run killed with SIGKILL and restarted on another rank count from the
newest committed version ends bit-exact with an uninterrupted run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import heat_harness as demo
import vlcc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_DIR = os.path.join(ROOT, "examples", "heat")


def test_decomposition_does_not_change_the_result(tmp_path):
    """1 rank, 2 ranks (2x1) and 4 ranks (2x2, column halos, uneven blocks): same bits."""
    grid = ["--ny", "37", "--nx", "53", "--steps", "40"]
    fields = {}
    for n in (1, 2, 4):
        out = str(tmp_path / f"u{n}.npy")
        demo.run_heat(n, *grid, "--out", out, timeout=120)
        fields[n] = np.load(out)
    init = str(tmp_path / "u0.npy")
    demo.run_heat(1, "--ny", "37", "--nx", "53", "--steps", "0", "--out", init, timeout=120)
    assert fields[1].shape == (37, 53)
    assert not np.array_equal(fields[1], np.load(init))   # it did evolve
    for n in (2, 4):
        assert np.array_equal(fields[1], fields[n]), f"{n} ranks differ from 1 rank"


@pytest.mark.slow
def test_kill_and_restart_on_other_rank_counts_is_bit_exact(tmp_path):
    grid = ["--ny", "64", "--nx", "96", "--steps", "400"]
    ref = str(tmp_path / "ref.npy")
    demo.run_heat(2, *grid, "--out", ref, timeout=120)

    repo = str(tmp_path / "repo")
    k = demo.run_and_kill(2, repo, *grid, "--every", "50", "--delay", "0.004", min_versions=2,
                          timeout=120)
    assert k["rc"] != 0, k["output"]                  # it was killed, it did not finish
    assert k["versions"] >= 2 and k["latest_step"] < 400, k
    killed_at = k["latest_step"]
    r = vlcc.Repository(repo)
    assert [v.step for v in r.log()] == list(range(killed_at, 0, -50))

    for n in (3, 1):
        rrepo = str(tmp_path / f"repo{n}")
        shutil.copytree(repo, rrepo)
        out = str(tmp_path / f"u{n}.npy")
        text = demo.run_heat(n, *grid, "--every", "50", "--repo", rrepo, "--restart", "--out", out,
                             timeout=120)
        assert f"(step {killed_at}, written on 2 ranks) on {n} ranks" in text, text
        assert np.array_equal(np.load(ref), np.load(out)), f"restart on {n} ranks is not bit-exact"
        vs = vlcc.Repository(rrepo).log(branch="main")
        assert [v.step for v in vs] == list(range(400, 0, -50))
        assert {v.nranks for v in vs if v.step > killed_at} == {n}
        # the final checkpoint holds the same field as the gathered output
        assert np.array_equal(vlcc.Repository(rrepo).read(vs[0], "heat/u"), np.load(out))


def test_run_demo_script(tmp_path):
    """What `make demo` runs, on a small grid: exit 0, bit-exact, log printed."""
    work = str(tmp_path / "demo")
    p = subprocess.run([sys.executable, os.path.join(DEMO_DIR, "run_demo.py"), "--ny", "48",
                        "--nx", "64", "--steps", "300", "--every", "50", "--workdir", work],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
                       cwd=ROOT)
    assert p.returncode == 0, p.stdout
    assert "BIT-EXACT" in p.stdout and "demo passed" in p.stdout, p.stdout
    repo = os.path.join(work, "heat")   # kept for the commands the demo prints
    vs = vlcc.Repository(repo).log()
    assert vs and vs[0].step == 300 and vs[0].nranks == 3
    assert vs[0].id in p.stdout      # the log was printed
    assert f"vlcc log {os.path.relpath(repo, ROOT)}" in p.stdout, p.stdout
