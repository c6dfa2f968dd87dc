"""Crash consistency (Promise 1): SIGKILL of a checkpointing MPI job at random
moments leaves only complete versions, every one bit-exact; a new job restarts
on what the kill left behind. The trial logic lives in tests/crash_harness.py
(benchmarks/crash_trials.py runs ``--trials 100`` of it); these tests drive it."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys

import pytest

import crash_harness as ct
import vlcc
from vlcc.repo import locks, refs
from vlcc.repo.paths import RepoPaths, new_version_id


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_random_sigkill_leaves_only_intact_versions(mode, monkeypatch):
    """20 kills at random moments, each followed by a restart on the killed
    repository. In async mode (VLCC_MODE reaches the job's Checkpointer) the
    kills land during capture, background flush or commit."""
    monkeypatch.setenv("VLCC_MODE", mode)
    seed = random.SystemRandom().randrange(2 ** 32)
    lines: list[str] = []
    results = ct.run_trials(20, seed, nranks=2, nbytes=1 << 20, jitter=0.05, max_commits=3,
                            echo=lines.append)
    line, ok = ct.summary(results)
    report = "\n".join([f"mode {mode}, seed {seed}", *lines, line])
    assert ok, report
    assert len(results) == 20
    # kills after commit #k (k >= 1) must find at least k versions: the trials exercised something
    for r in results:
        assert r["versions"] >= r["after_commits"] >= 0, report
        assert r["intact"] == r["versions"], report
        assert r["restarted"] == r["versions"] + 1, report
    assert sum(r["versions"] for r in results) > 0, report


def test_content_is_recomputable_from_the_step():
    a, b = ct.content(7, 0, 1000), ct.content(8, 0, 1000)
    assert a.dtype.name == "uint64" and not (a == b).any()
    assert (ct.content(7, 500, 1000) == a[500:]).all()


def _fake_leftovers(repo: str) -> list[str]:
    """What a crash leaves: a copy of a version's data without manifest (killed
    before the commit), a half-written one (rank 1 missing) and temp files."""
    lay = RepoPaths(repo)
    head = vlcc.Repository(repo).log()[0]
    ids = []
    full = new_version_id()
    shutil.copytree(lay.data_dir(head.id), lay.data_dir(full))
    ids.append(full)
    half = new_version_id()
    os.makedirs(lay.data_dir(half))
    for f in os.listdir(lay.data_dir(head.id)):
        if f.startswith("r0"):
            src = os.path.join(lay.data_dir(head.id), f)
            dst = os.path.join(lay.data_dir(half), f)
            (shutil.copytree if os.path.isdir(src) else shutil.copy)(src, dst)
    ids.append(half)
    # a manifest that was being written when the process died (temp name, never renamed)
    with open(os.path.join(lay.versions_dir, f".tmp-{half}.json-deadbeef0000"), "w") as f:
        f.write('{"id": "' + half + '", "ste')
    return ids


@pytest.mark.parametrize("restart_ranks", [2, 3])
def test_restart_on_repository_with_partial_leftovers(tmp_path, restart_ranks):
    repo = str(tmp_path / "repo")
    out = ct.run_job(2, repo, 128 << 10, steps=3)
    assert sorted(ct.reported(out)) == [1, 2, 3]
    leftovers = _fake_leftovers(repo)

    r = vlcc.Repository(repo)
    assert [v.step for v in r.log()] == [3, 2, 1]
    assert not set(leftovers) & {v.id for v in r.log()}

    out = ct.run_job(restart_ranks, repo, 128 << 10, steps=2, resume=True)
    assert "resumed 3 " in out, out
    r = vlcc.Repository(repo)
    listed = [v.id for v in r.log()]
    assert [v.step for v in r.log()] == [5, 4, 3, 2, 1]
    assert not set(leftovers) & set(listed)
    assert r.resolve("latest", branch="main").step == 5
    res = ct.check_repo(repo, ct.reported(out))
    assert res["problems"] == [] and res["intact"] == 5
    assert res["partial_dirs"] == 2          # leftovers stay, unlisted (gc may remove them)
    assert r.verify()["versions"] == 5
    # the version after the restart descends from the restored one
    v4 = [v for v in r.log() if v.step == 4][0]
    assert r.resolve(v4.parent).step == 3 and v4.nranks == restart_ranks


def test_lock_left_by_a_killed_process_is_broken(tmp_path):
    """A ref lock whose holder died (SIGKILL during a commit) does not block the next commit."""
    repo = str(tmp_path / "repo")
    ct.run_job(2, repo, 4096, steps=1)
    lay = RepoPaths(repo)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(timeout=60)
    lock = lay.ref("branch", "main") + ".lock"
    # a record as that pid would write it: its own start time, not ours
    holder = lambda pid: json.dumps(dict(locks.record("ref"), pid=pid,  # noqa: E731
                                         start=locks.start_ticks(pid)))
    with open(lock, "w") as f:
        f.write(holder(dead.pid))
    with refs.ref_lock(lay, "branch", "main", timeout=20):
        assert json.load(open(lock))["pid"] == os.getpid()
    assert not os.path.exists(lock)

    # a live holder keeps its lock: acquiring times out, naming the holder
    with open(lock, "w") as f:
        f.write(holder(os.getppid()))
    with pytest.raises(vlcc.LockBusyError, match=f"held by pid {os.getppid()}"):
        with refs.ref_lock(lay, "branch", "main", timeout=0.2):
            pass
    os.unlink(lock)

    # and the job commits on top of a dead holder's lock
    with open(lock, "w") as f:
        f.write(holder(dead.pid))
    out = ct.run_job(2, repo, 4096, steps=1, resume=True)
    assert "resumed 1 " in out and 2 in ct.reported(out)
    assert [v.step for v in vlcc.Repository(repo).log()] == [2, 1]
