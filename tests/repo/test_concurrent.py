"""Concurrent writers on one branch and dedup against pruned versions
(docs/format.md, section 5, "Concurrent writers and dedup parents").

* two real MPI jobs (2 ranks and 1 rank) checkpointing one branch at once,
  sync and async: every version on the branch's lineage and bit-exact, or
  (``if_moved="fail"``) refused with BranchMovedError naming it;
* a writer whose last version (its in-memory dedup table) was pruned and
  gc'ed by another process never references a deleted file, and its new
  version's parent is an existing version;
* a writer racing another process's prune + gc loop: every surviving
  version restores bit-exact and ``verify`` passes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import vlcc
from conftest import MPIEXEC, SCRIPTS_DIR
from vlcc._mpi import without_launcher

TIMEOUT = 240


def _self():
    from mpi4py import MPI
    return MPI.COMM_SELF


def _start(nprocs: int, script: str, *args) -> subprocess.Popen:
    cmd = [MPIEXEC, "-n", str(nprocs), sys.executable, "-m", "mpi4py",
           os.path.join(SCRIPTS_DIR, script), *map(str, args)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=without_launcher(), start_new_session=True)


def _finish(procs: list[subprocess.Popen], timeout: float = TIMEOUT) -> None:
    """Wait for every job; a hang or a failure fails the test with its output."""
    deadline = time.monotonic() + timeout
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=max(1.0, deadline - time.monotonic())))
    except subprocess.TimeoutExpired:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, 9)
                p.communicate()
        pytest.fail(f"timeout after {timeout} s")
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, f"{' '.join(p.args)} exited {p.returncode}\n{out}\n{err}"


def _lineage(repo: vlcc.Repository, branch: str = "main") -> list[str]:
    """Walk parents from the branch head (not through log(), which stops quietly)."""
    out, vid = [], repo.branch_head(branch)
    while vid is not None:
        out.append(vid)
        vid = repo.resolve(vid).parent
    return out


# -- two jobs on one branch ----------------------------------------------------------------
@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("if_moved", ["rebase", "fail"])
def test_two_mpi_jobs_on_one_branch(tmp_path, mode, if_moved):
    n = 15
    path, go = str(tmp_path / "r"), str(tmp_path / "go")
    with open(go + ".jobs", "w") as f:
        f.write("1 2")
    procs = [_start(2, "concurrent_writer.py", path, 1, n, mode, if_moved, tmp_path / "o1.json", go),
             _start(1, "concurrent_writer.py", path, 2, n, mode, if_moved, tmp_path / "o2.json", go)]
    _finish(procs)
    outs = [json.loads((tmp_path / f"o{j}.json").read_text()) for j in (1, 2)]
    repo = vlcc.Repository(path)
    lineage = _lineage(repo)
    assert len(lineage) == len(set(lineage)) == len(repo.version_ids())   # nothing off the lineage
    assert {v.id for v in repo.log("main")} == set(lineage)
    cli = subprocess.run([os.path.join(os.path.dirname(sys.executable), "vlcc"), "log", path],
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    committed, refused = 0, 0
    for o in outs:
        named = " ".join(msg for _step, msg in o["refused"])   # BranchMovedError messages
        for vid, step in o["written"]:
            if vid in lineage:
                committed += 1
                v = repo.resolve(vid)
                assert (v.attrs["job"], v.step) == (o["job"], step)
                want = o["job"] * 1e6 + step * 1e3 + np.arange(12, dtype=np.float64)
                assert np.array_equal(repo.read(vid, "u"), want), (vid, o["job"], step)
                assert vid[:12] in cli.stdout
            else:   # only with if_moved="fail", and its writer was told
                assert if_moved == "fail" and vid in named, (vid, o)
                refused += 1
        for _step, msg in o["refused"]:
            assert "moved to" in msg
    assert committed == len(lineage)
    if if_moved == "rebase":
        assert committed == 2 * n and refused == 0
        assert not any(o["refused"] for o in outs)
    else:
        errors = sum(len(o["refused"]) for o in outs)
        print(f"if_moved=fail ({mode}): {committed} committed, {refused} refused versions, "
              f"{errors} BranchMovedError")
        # the jobs meet after their first versions: a moved branch is certain
        assert errors >= 1, outs
        assert committed + refused + sum(1 for o in outs for s, _ in o["refused"] if s >= 0) >= 2 * n
    repo.verify()


# -- dedup parent pruned between two checkpoints ---------------------------------------------
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_dedup_parent_pruned_and_gced_by_another_process(tmp_path, mode):
    path = str(tmp_path / "r")
    a = np.arange(2000, dtype=np.float64)
    b = a + 0.5
    kw = dict(chunk_size=1024, coalesce_below=0)
    with vlcc.Checkpointer(path, _self(), mode=mode, **kw) as ck_a, \
            vlcc.Checkpointer(path, _self(), **kw) as ck_b:
        ck_a.register("x", a)
        ck_b.register("x", b)
        v1 = ck_a.checkpoint(step=1)
        ck_a.wait()
        ck_b.checkpoint(step=100)
        head = ck_b.checkpoint(step=101)
        # another process: A's only version goes, and its files with it
        subprocess.run([sys.executable, "-c", "import sys, vlcc; r = vlcc.Repository(sys.argv[1]); "
                        "r.prune(keep_last=2); r.gc(grace=0)", path], check=True, timeout=120)
        assert v1.id not in vlcc.Repository(path).version_ids()
        assert not os.path.exists(os.path.join(path, "data", v1.id))
        a[:10] = -1           # most chunks unchanged: A's stale table would hit them
        v2 = ck_a.checkpoint(step=2)
        a2 = a.copy()
        a[-10:] = -2          # async: v2 may still be in flight (then v3 dedups against the head)
        v3 = ck_a.checkpoint(step=3)
        ck_a.wait()
    repo = vlcc.Repository(path)
    m = repo.resolve(v2.id)
    assert m.parent == head.id and m.manifest["rebased_from"] == v1.id
    assert [v.id for v in repo.log("main")][:3] == [v3.id, v2.id, head.id]
    repo.verify()
    assert np.array_equal(repo.read(v2.id, "x"), a2)
    assert np.array_equal(repo.read(v3.id, "x"), a)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_restored_parent_pruned_checkpoints_again(tmp_path, mode):
    """A job that restored an old version, which is then pruned, can still
    checkpoint: its new version's parent is the branch head (an existing
    version), not the pruned id."""
    path = str(tmp_path / "r")
    x = np.zeros(300)
    with vlcc.Checkpointer(path, _self(), mode=mode, chunk_size=256, coalesce_below=0) as ck:
        ck.register("x", x)
        made = []
        for i in range(3):
            x[:] = i
            made.append(ck.checkpoint(step=i))
        ck.wait()
        ck.restore(made[0].id)
        assert np.all(x == 0)
        r = vlcc.Repository(path)
        r.prune(keep_last=1)
        r.gc(grace=0)
        x[:5] = 7
        v = ck.checkpoint(step=10)
        ck.wait()
        v_next = ck.checkpoint(step=11)
        ck.wait()
    repo = vlcc.Repository(path)
    m = repo.resolve(v.id)
    assert m.parent == made[2].id and m.manifest["rebased_from"] == made[0].id
    assert repo.resolve(v_next.id).parent == v.id
    repo.verify()
    assert np.array_equal(repo.read(v.id, "x"), x)


# -- prune + gc racing a writer ------------------------------------------------------------
_PRUNER = r"""
import os, sys, time, vlcc
path, counter, stop = sys.argv[1:4]
repo = vlcc.Repository(path)
n = 0
while not os.path.exists(stop):
    try:
        repo.prune(keep_last=2, timeout=60)
        repo.gc(grace=0, timeout=60)
    except vlcc.NotFoundError:
        pass                                   # no repository yet
    n += 1
    with open(counter + ".tmp", "w") as f:
        f.write(str(n))
    os.replace(counter + ".tmp", counter)
    time.sleep(0.1)   # gc/prune win every race for the locks: give the writer a gap
"""


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_prune_and_gc_racing_a_writer(tmp_path, mode):
    path, counter, stop = str(tmp_path / "r"), str(tmp_path / "count"), str(tmp_path / "stop")
    vlcc.Checkpointer(path, _self()).close()       # the repository exists before the pruner starts
    pruner = subprocess.Popen([sys.executable, "-c", _PRUNER, path, counter, stop],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        writer = _start(1, "prune_race_writer.py", path, mode, 8, tmp_path / "made.json", counter)
        _finish([writer])
    finally:
        open(stop, "w").close()
        try:
            out, err = pruner.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            pruner.kill()
            out, err = pruner.communicate()
    assert pruner.returncode == 0, err
    sys.path.insert(0, SCRIPTS_DIR)
    from prune_race_writer import values
    made = json.loads((tmp_path / "made.json").read_text())
    repo = vlcc.Repository(path)
    alive = set(repo.version_ids())
    survivors = [(vid, w, s) for vid, w, s in made if vid in alive]
    tagged = [(vid, s) for vid, w, s in made if w == 0 and s % 2]
    assert len(made) == 24 and {vid for vid, _s in tagged} <= alive
    for vid, s in tagged[1:]:
        # written after its parent (A's previous version) was pruned and gc'ed:
        # re-parented onto an existing version, deduplicated against live files
        m = repo.resolve(vid).manifest
        assert m["rebased_from"] == made[3 * (s - 1)][0] and m["rebased_from"] not in alive
    for vid, w, s in survivors:
        assert np.array_equal(repo.read(vid, "x"), values(w, s)), (vid, w, s)
    repo.verify()
