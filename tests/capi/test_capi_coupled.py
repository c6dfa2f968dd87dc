"""Coupled example: a Python driver and a C solver library (linked to libvlcc) in one
process; one checkpoint holds both sides' providers and one restore fills both."""

from __future__ import annotations

import re

import numpy as np

import vlcc
from capi_helpers import BIN, ROOT, build_c, clean_env, mpirun

EX = ROOT / "examples" / "coupled"


def test_coupled_driver_and_c_solver_share_one_version(tmp_path):
    lib = build_c(EX / "solver.c", tmp_path / "libsolver.so", extra=("-shared", "-fPIC"))
    repo = tmp_path / "repo"
    py = BIN / "python"
    first = mpirun(2, py, EX / "driver.py", repo, lib, env=clean_env())
    second = mpirun(2, py, EX / "driver.py", repo, lib, "--restore", env=clean_env())
    r = vlcc.Repository(repo)
    (v,) = r.log()
    assert sorted(v.providers) == ["driver/epoch", "driver/weights", "solver/u"]
    n = 10
    expected = np.arange(n) * 2.5            # index + 3 steps of 0.5 * index
    assert np.array_equal(r.read(v, "solver/u"), expected)
    # The restoring run starts from fresh state (solver field = index, weights = rank+1,
    # epoch 0) and prints what the restore put back: identical to what was checkpointed.
    def lines(out):
        return sorted(l for l in out.splitlines() if l.startswith("rank "))
    assert lines(first.stdout) == lines(second.stdout)
    assert any(re.search(r"epoch 3 weights \[16\.0", l) for l in lines(second.stdout))
