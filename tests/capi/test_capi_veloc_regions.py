"""The rest of VeloC's memory API on libvlcc (include/veloc.h): named regions
(VELOC_Region_protect/unprotect/clear), VELOC_Mem_clear, VELOC_Checkpoint_finished,
VELOC_Cleanup and VELOC_Init_single, with VeloC's semantics, driven by
examples/veloc/regions_veloc.c under the real mpiexec (2 ranks, async mode) and as a plain
serial program (Init_single, no launcher, no MPI_Init)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import vlcc
from capi_helpers import ROOT, build_c, clean_env, mpirun, run

N = 1000
EXPECTED = {
    "init": "ok", "region_protect_a": "ok", "region_protect_b": "ok", "mem_protect_c": "ok",
    "mem_protect_k": "ok", "ckpt_alpha": "ok", "ckpt_beta": "ok",
    "finished_inside_checkpoint": "fail",           # between begin and end: an error (VeloC)
    "ckpt_alpha_2": "ok", "finished": "ok", "wait": "ok",
    "region_unprotect_b": "ok", "region_unprotect_b_again": "fail",
    "mem_clear": "ok", "ckpt_beta_after_clear": "fail",      # nothing left to store
    "region_clear_alpha": "ok", "ckpt_alpha_after_clear": "fail",
    "restart_test_alpha": "ok", "restart_alpha": "ok", "restart_beta": "ok", "values": "ok",
    "finalize": "ok"}


@pytest.fixture(scope="module")
def prog(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("regions_veloc")
    return build_c(ROOT / "examples" / "veloc" / "regions_veloc.c", d / "regions_veloc")


def rows(stdout: str) -> dict:
    return {l.split("|", 1)[0]: l.split("|", 1)[1] for l in stdout.splitlines() if "|" in l}


def check_sets(repo: Path, alpha: str, beta: str, nranks: int) -> None:
    """Checkpoint alpha holds the regions protected under "alpha" (a, b); beta, which has no
    region of its own, the unnamed ones (c, k); nothing was committed after the clears, and
    alpha's second version continues alpha's lineage."""
    r = vlcc.Repository(repo)
    by = {(v.branch, v.step): v for v in r.log()}
    assert set(by) == {(alpha, 1), (alpha, 2), (beta, 1)}, set(by)
    va, va2, vb = by[(alpha, 1)], by[(alpha, 2)], by[(beta, 1)]
    assert va2.parent == va.id
    assert set(va.providers) == {"veloc/0", "veloc/1"}, va.providers
    assert set(vb.providers) == {"veloc/0", "veloc/2"}, vb.providers
    assert va.nranks == vb.nranks == nranks
    if nranks == 1:      # per-rank bytes of one rank read back as they were written
        i = np.arange(N)
        assert np.array_equal(r.read(va, "veloc/1").view(np.float64), -(i + 1.0))
        assert np.array_equal(r.read(vb, "veloc/0").view(np.float64), 0.5 * i)
        assert np.array_equal(r.read(vb, "veloc/2").view(np.int32), np.arange(4) + 1)


def test_named_regions_mem_clear_finished_cleanup_on_2_ranks(prog, tmp_path):
    cfg = tmp_path / "veloc.cfg"
    cfg.write_text(f"persistent = {tmp_path / 'repo'}\nscratch = {tmp_path / 'scratch'}\n"
                   f"mode = async\n")
    p = mpirun(2, prog, cfg, "--scratch", tmp_path / "scratch")
    got = rows(p.stdout)
    scratch = got.pop("scratch_files").split("|")
    assert {k: got.get(k) for k in EXPECTED} == EXPECTED, p.stdout + p.stderr
    assert got.pop("cleanup_alpha") == "ok" and got.pop("cleanup_beta") == "ok"
    # Cleanup removed this process's scratch copies (there were some: async mode keeps the
    # newest versions node-local for fast restarts); the repository keeps every version.
    assert int(scratch[0]) > 0 and int(scratch[1]) == 0, scratch
    assert "VELOC_Checkpoint_finished: a checkpoint is in progress" in p.stderr
    assert "region 1 of checkpoint 'alpha' is not protected" in p.stderr
    check_sets(tmp_path / "repo", "alpha", "beta", nranks=2)


def test_init_single_without_mpi(prog, tmp_path):
    cfg = tmp_path / "veloc.cfg"
    cfg.write_text(f"persistent = {tmp_path / 'repo'}\nmode = sync\n")
    # A serial program: no mpiexec, no MPI_Init, nothing in the environment.
    p = run([prog, cfg, "--single", "7"], env=clean_env())
    got = rows(p.stdout)
    assert {k: got.get(k) for k in EXPECTED} == EXPECTED, p.stdout + p.stderr
    # Checkpoint NAME of process 7 is the branch NAME.7, a one-rank version in the usual format.
    check_sets(tmp_path / "repo", "alpha.7", "beta.7", nranks=1)
