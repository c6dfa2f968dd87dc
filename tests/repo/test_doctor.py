"""Recovery after a killed job (issue 10): kill -9 of a 2-rank async job with
versions pending, then `vlcc gc` reclaims their data at once (the writer is
dead: no grace hour), and `vlcc doctor` lists (dry run: changes nothing) and
with --repair removes stale locks, orphan data, temp files and the dead
job's node-local tier; dangling refs are reported, never changed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

import vlcc
from conftest import MPIEXEC, SCRIPTS_DIR
from vlcc._mpi import without_launcher

NRANKS = 2
N = 200_000     # as in tests/scripts/async_kill.py


def cli(*args, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "vlcc.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env)


def tree(path):
    return sorted(os.path.relpath(os.path.join(r, f), path)
                  for r, ds, fs in os.walk(path) for f in fs + ds)


def run_and_kill(repo, env, timeout=120):
    """Start the job, wait for its ``pending`` line, SIGKILL every process of it."""
    cmd = [MPIEXEC, "-n", str(NRANKS), sys.executable, "-m", "mpi4py",
           os.path.join(SCRIPTS_DIR, "async_kill.py"), repo]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)
    lines = []
    deadline = time.monotonic() + timeout
    try:
        for line in proc.stdout:
            lines.append(line.split())
            if line.startswith("pending") or time.monotonic() > deadline:
                break
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        err = proc.stderr.read()
    done = {w[0]: w[1:] for w in lines if w}
    assert "pending" in done, f"job ended early: {lines}\n{err}"
    return done["committed"][0], done["pending"]


def tiers(local):
    """The process directories of a node-local base (``.vlcc-base`` marks a
    base vlcc created, engine/local.py)."""
    return [n for n in os.listdir(local) if not n.startswith(".")]


def test_kill_during_async_then_gc_and_doctor_recover(tmp_path):
    repo = str(tmp_path / "repo")
    local = str(tmp_path / "local")
    # VLCC_FLUSH_MPI=0: flushed versions wait for the application's next call
    # to commit (with the flusher committing, none would stay pending)
    env = dict(without_launcher(), VLCC_LOCAL_DIR=local, VLCC_FLUSH_MPI="0")
    v1, pending = run_and_kill(repo, env)
    r = vlcc.Repository(repo)
    assert [v.id for v in r.log()] == [v1]
    # the killed job left: writer locks of a dead pid, the pending versions'
    # data without manifests, its node-local tier (one directory per rank)
    stale_locks = sorted(os.listdir(os.path.join(repo, "locks")))
    assert stale_locks and all(f.startswith("write-") for f in stale_locks)
    assert set(pending) <= set(os.listdir(os.path.join(repo, "data")))
    assert len(tiers(local)) == NRANKS
    # a temp file of an interrupted atomic write (a crash inside fsutil.atomic_write)
    tmpf = os.path.join(repo, "versions", f".tmp-{pending[0]}.json-0123456789ab")
    with open(tmpf, "w") as f:
        f.write("{")
    os.utime(tmpf, (time.time() - 3600, time.time() - 3600))
    # and a dangling tag (reported, never changed)
    with open(os.path.join(repo, "refs", "tags", "gone"), "w") as f:
        f.write("00000000deadbeef\n")

    # doctor --dry-run lists everything and changes nothing
    before = tree(repo) + tree(local)
    d = cli("doctor", repo, "--dry-run", "--json", env=env)
    assert d.returncode == 1, d.stderr
    rep = json.loads(d.stdout)
    kinds = {}
    for f in rep["findings"]:
        kinds.setdefault(f["kind"], []).append(f["path"])
    assert sorted(kinds["stale-lock"]) == [f"locks/{f}" for f in stale_locks]
    assert sorted(kinds["orphan-data"]) == sorted(f"data/{vid}" for vid in pending)
    assert kinds["temp-file"] == [os.path.relpath(tmpf, repo)]
    assert sorted(kinds["local-tier"]) == sorted(os.path.join(local, n) for n in tiers(local))
    assert kinds["dangling-ref"] == ["tag gone"]
    assert not any(f["removed"] for f in rep["findings"])
    assert tree(repo) + tree(local) == before
    text = cli("doctor", repo, env=env)           # human output: one entry per item
    assert text.returncode == 1 and "would remove" in text.stdout and "--repair" in text.stdout

    # gc right away (default grace of an hour): the dead job's pending data goes
    g = cli("gc", repo, "--json", env=env)
    assert g.returncode == 0, g.stderr
    res = json.loads(g.stdout)
    assert res["kept_in_flight"] == [] and res["reclaimed_bytes"] >= NRANKS * N * 8 * len(pending)
    assert sorted(b["lock"] for b in res["broken_locks"]) == [f"locks/{f}" for f in stale_locks]
    assert os.listdir(os.path.join(repo, "data")) == [v1]
    assert not os.listdir(os.path.join(repo, "locks")) and not os.path.exists(tmpf)

    # doctor --repair removes what is left (the local tier); the tag stays
    fix = cli("doctor", repo, "--repair", env=env)
    assert fix.returncode == 1 and "removed" in fix.stdout and "report only" in fix.stdout, fix.stdout
    assert not tiers(local)
    assert open(os.path.join(repo, "refs", "tags", "gone")).read() == "00000000deadbeef\n"
    os.unlink(os.path.join(repo, "refs", "tags", "gone"))
    ok = cli("doctor", repo, env=env)
    assert ok.returncode == 0 and "no problem found" in ok.stdout, ok.stdout

    # the committed version restores bit-exact, and the repository takes new versions
    r = vlcc.Repository(repo)
    assert r.verify()["versions"] == 1
    np.testing.assert_array_equal(r.read(v1, "u"), np.arange(N * NRANKS, dtype=np.float64))
    from mpi4py import MPI
    with vlcc.Checkpointer(repo, comm=MPI.COMM_SELF) as ck:
        u = np.zeros(N * NRANKS)
        ck.register("u", u, global_shape=u.shape, offset=(0,))
        ck.restore()
        np.testing.assert_array_equal(u, np.arange(N * NRANKS, dtype=np.float64))
        assert ck.checkpoint(step=9).parent == v1


def test_doctor_repair_removes_stale_locks_and_orphans_directly(tmp_path, monkeypatch):
    """Repository.doctor: a dead writer's lock, an empty ref lock, a stale
    gc.lock, an orphan data dir and a temp file in a live version's directory
    are listed, then removed; a live writer's lock is left alone (and its
    possible data directories are not judged)."""
    from mpi4py import MPI
    from vlcc.repo import locks
    monkeypatch.setenv("VLCC_LOCAL_DIR", str(tmp_path / "local"))   # not this machine's /dev/shm
    repo = str(tmp_path / "repo")
    with vlcc.Checkpointer(repo, comm=MPI.COMM_SELF) as ck:
        ck.register("a", np.arange(100.0))
        v = ck.checkpoint()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(timeout=60)
    rec = lambda kind, pid: json.dumps(dict(locks.record(kind), pid=pid))  # noqa: E731
    lk = os.path.join(repo, "locks")
    with open(os.path.join(lk, f"write-{locks._HOST}-{dead.pid}-aaaa.lock"), "w") as f:
        f.write(rec("write", dead.pid))
    with open(os.path.join(lk, "gc.lock"), "w") as f:
        f.write(rec("gc", dead.pid))
    reflock = os.path.join(repo, "refs", "branches", "main.lock")
    open(reflock, "w").close()
    os.utime(reflock, (time.time() - 60, time.time() - 60))
    os.makedirs(os.path.join(repo, "data", "00000000deadbeef", "r0.bp"))
    tmpf = os.path.join(repo, "data", v.id, ".tmp-reserve-r0.bp")
    open(tmpf, "w").close()
    r = vlcc.Repository(repo)
    rep = r.doctor()
    assert not rep.ok and not rep.repair
    found = sorted((f.kind, f.path) for f in rep.findings)
    assert found == sorted([
        ("stale-lock", f"locks/write-{locks._HOST}-{dead.pid}-aaaa.lock"),
        ("stale-lock", "locks/gc.lock"), ("stale-lock", "refs/branches/main.lock"),
        ("orphan-data", "data/00000000deadbeef"), ("temp-file", f"data/{v.id}/.tmp-reserve-r0.bp")])
    assert rep["remaining"] == 5
    # a live writer (this process) appears: orphans are not judged, nothing of it is touched
    live = locks.acquire_writer(r.layout)
    busy = r.doctor(repair=True, timeout=0.2)
    assert os.path.exists(live) and os.path.isdir(os.path.join(repo, "data", "00000000deadbeef"))
    assert any(f.kind == "busy" for f in busy.findings) and not busy.ok
    locks.release(live)
    fixed = r.doctor(repair=True)
    assert fixed.ok and fixed["remaining"] == 0, fixed.problems
    assert sorted(os.listdir(lk)) == [] and not os.path.exists(reflock) and not os.path.exists(tmpf)
    assert os.listdir(os.path.join(repo, "data")) == [v.id]
    assert r.doctor().ok
    np.testing.assert_array_equal(r.read(v, "a"), np.arange(100.0))


def _dead_tier(base: str, marked_for: "str | None") -> str:
    """A local-tier directory of a dead process on this host, marked (repo/tiermark)
    as serving repository ``marked_for`` (None: no marker, an older vlcc's)."""
    from vlcc.repo import locks, tiermark
    from vlcc.repo.paths import RepoPaths
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(timeout=60)
    d = os.path.join(base, f"{locks._HOST}-{dead.pid}")
    os.makedirs(d)
    with open(os.path.join(d, "owner.json"), "w") as f:
        json.dump(dict(locks.record("local"), pid=dead.pid), f)
    if marked_for is not None:
        tiermark.write(d, RepoPaths(marked_for))
        doc = tiermark.read(d)
        assert doc["repository"] == os.path.abspath(marked_for) and doc["repository_id"]
    return d


def test_doctor_judges_only_its_repositorys_local_tiers(tmp_path, monkeypatch):
    """Dead jobs' tiers of another repository (and unmarked ones) in the same
    local base are not this repository's problems: a healthy repository exits 0
    however busy the node; its own dead tier is found and removed. Doctor points
    to `vlcc verify` for data."""
    from vlcc.cli import main
    local = str(tmp_path / "local")
    monkeypatch.setenv("VLCC_LOCAL_DIR", local)
    ours, theirs = str(tmp_path / "ours"), str(tmp_path / "theirs")
    for path in (ours, theirs):
        with vlcc.Checkpointer(path, mode="async", local_dir=local) as ck:
            ck.register("a", np.arange(10.0))
            ck.checkpoint()
    other = [_dead_tier(local, theirs), _dead_tier(local, None)]
    assert vlcc.Repository(ours).doctor().ok
    assert main(["doctor", ours]) == 0
    mine = _dead_tier(local, ours)
    rep = vlcc.Repository(ours).doctor(repair=True)
    assert [(f.kind, f.path, f.removed) for f in rep.findings] == [("local-tier", mine, True)]
    assert all(os.path.isdir(d) for d in other) and not os.path.exists(mine)
    assert [f.path for f in vlcc.Repository(theirs).doctor().findings] == [other[0]]


def test_doctor_points_to_verify(tmp_path, capsys):
    from vlcc.cli import main
    repo = str(tmp_path / "repo")
    with vlcc.Checkpointer(repo) as ck:
        ck.register("a", np.arange(10.0))
        ck.checkpoint()
    assert main(["doctor", repo]) == 0
    out = capsys.readouterr().out
    assert "no problem found" in out and f"vlcc verify {os.path.abspath(repo)}" in out, out
