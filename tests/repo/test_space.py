"""A full disk at every stage of a checkpoint (issue 10): space is reserved
before ADIOS2 writes (repo/space.py, io/bp5.py), every failure is a clear
StorageError on every rank that leaves the repository as it was, and
`vlcc prune` / `vlcc gc` (the real CLI) recover space on the full disk with
no manual step. Needs root for the tmpfs mounts (tests/conftest.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import vlcc
from vlcc.repo import gc as gcmod
from vlcc.repo import locks
from vlcc.repo.paths import RepoPaths

SCRIPT = "space_fill.py"
NRANKS = 2
BLOCK, BIG = 16384, 32768       # as in tests/scripts/space_fill.py


def cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "vlcc.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def last_json(proc):
    return json.loads(proc.stdout.strip().splitlines()[-1])


def u_of(step):
    return np.random.default_rng(step).random(BLOCK * NRANKS)


def no_locks(repo):
    lay = RepoPaths(repo)
    left = os.listdir(lay.locks_dir)
    left += [f for _r, _d, fs in os.walk(lay.ref_dir("branch")) for f in fs if f.endswith(".lock")]
    return not left


def stage(msg: str) -> str:
    if "data file" in msg or re.search(r"r\d+\.bp", msg):
        return "data"
    if ".idx.json" in msg:
        return "index"
    if "ranks.bin" in msg:
        return "ranks table"
    if "/versions/" in msg:
        return "manifest"
    if ".lock" in msg:
        return "lock"
    return "other: " + msg


def test_full_disk_at_every_stage_then_cli_prune_gc_recover(tmpfs, mpirun):
    mnt = tmpfs.mount("4m")
    repo = os.path.join(mnt, "repo")
    base = last_json(mpirun(NRANKS, SCRIPT, repo, mnt, "base"))

    # R bytes free, R = 0, ..., one page at a time until a checkpoint fits; the
    # script checks after each failure that nothing in the repository changed
    scan = last_json(mpirun(NRANKS, SCRIPT, repo, mnt, "scan", timeout=600))["attempts"]
    *failed, done = scan
    assert all(r["ok"] for r in done["ranks"]), done
    assert failed, "the first attempt (0 bytes free) cannot succeed"
    seen = set()
    for a in failed:
        for r in a["ranks"]:
            assert not r["ok"] and r["vlcc"] and r["type"] == "StorageError", (a["free"], r)
            assert "no space left on device" in r["msg"], r
        seen.add(stage(a["ranks"][0]["msg"]))
    # every stage with a write of its own was hit: the BP5 data (reserved
    # before ADIOS2 is involved), the rank indexes, the rank table, the manifest
    assert {"data", "index", "ranks table", "manifest"} <= seen, seen
    assert not any(s.startswith("other") for s in seen), seen

    # the version that fitted is the branch head (even if its ref move failed)
    r = vlcc.Repository(repo)
    v3 = done["ranks"][0]["id"]
    assert r.resolve("branch:main").id == v3
    assert r.resolve(v3).parent == base["v2"]
    # the previous versions are intact and read back bit-exact
    assert r.verify()["versions"] == 3
    np.testing.assert_array_equal(r.read(base["v1"], "u"), u_of(1))
    np.testing.assert_array_equal(r.read(base["v2"], "u"), u_of(2))
    for k in range(NRANKS):
        np.testing.assert_array_equal(r.read(base["v1"], "big", rank=k),
                                      np.random.default_rng(100 + k).random(BIG))
    np.testing.assert_array_equal(r.read(v3, "u"), u_of(3))
    assert no_locks(repo)

    # a completely full disk: a clear error on every rank, nothing changed
    full = last_json(mpirun(NRANKS, SCRIPT, repo, mnt, "full"))
    assert full["free"] == 0
    for x in full["ranks"]:
        assert not x["ok"] and x["type"] == "StorageError" and "no space left on device" in x["msg"]
    assert sorted(v.id for v in vlcc.Repository(repo).log()) == sorted([base["v1"], base["v2"], v3])
    assert no_locks(repo)

    # on that full disk the CLI reclaims space: prune, then gc, no manual step
    p = cli("prune", repo, "--keep-last", "1")
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr and no_locks(repo)
    g = cli("gc", repo, "--json")
    assert g.returncode == 0, g.stderr
    res = json.loads(g.stdout)
    assert res["reclaimed_bytes"] > 0 and res["live_versions"] == 1
    assert os.statvfs(mnt).f_bavail > 0 and no_locks(repo)

    # and a checkpoint succeeds with the filler still there, restoring bit-exact
    back = last_json(mpirun(NRANKS, SCRIPT, repo, mnt, "resume"))
    assert back["bit_exact"] == [True] * NRANKS
    r = vlcc.Repository(repo)
    assert r.resolve("branch:main").id == back["id"] and r.verify()["versions"] == 2
    np.testing.assert_array_equal(r.read(v3, "u"), u_of(3))


def _fill_inodes(d):
    """Create empty files until the file system has no inode left."""
    made = []
    while True:
        p = os.path.join(d, f"i{len(made)}")
        try:
            open(p, "w").close()
        except OSError:
            return made
        made.append(p)


def test_no_inode_left_fails_at_the_lock_and_gc_says_why(tmpfs):
    """With no inode left even the writer lock cannot be created: a
    StorageError naming the lock file, nothing left behind; gc/prune fail the
    same clean way (no empty gc.lock) and work once one inode is free."""
    mnt = tmpfs.mount("4m,nr_inodes=64")
    repo = os.path.join(mnt, "repo")
    from mpi4py import MPI
    a = np.arange(1000.0)
    with vlcc.Checkpointer(repo, comm=MPI.COMM_SELF) as ck:
        ck.register("a", a)
        v1 = ck.checkpoint()
        fillers = _fill_inodes(os.path.join(mnt))
        a += 1
        with pytest.raises(vlcc.StorageError, match=r"cannot create lock file .*locks/write-.*no space left"):
            ck.checkpoint()
        assert no_locks(repo)
        p = cli("gc", repo)
        assert p.returncode == 5 and "StorageError" in p.stderr and "gc.lock" in p.stderr, p.stderr
        assert "Traceback" not in p.stderr and no_locks(repo)
        p = cli("prune", repo, "--keep-last", "1")
        assert p.returncode == 5 and "gc.lock" in p.stderr and no_locks(repo), p.stderr
        # from 1 free inode on, each failure is a StorageError until it fits
        for k, f in enumerate(fillers):
            os.unlink(f)
            try:
                v2 = ck.checkpoint()
                break
            except vlcc.StorageError as exc:
                assert "no space left on device" in str(exc), exc
                assert no_locks(repo) and [v.id for v in vlcc.Repository(repo).log()] == [v1.id]
        else:
            pytest.fail("no checkpoint fitted")
        assert k >= 2      # the lock, the data directory, ... each needed its inode
    r = vlcc.Repository(repo)
    assert [v.id for v in r.log()] == [v2.id, v1.id]
    np.testing.assert_array_equal(r.read(v2, "a"), np.arange(1000.0) + 1)
    assert cli("gc", repo).returncode == 0


def test_lock_record_on_a_full_disk_is_a_symlink(tmpfs):
    """No byte free: the lock record goes into a symlink (no data block); it
    reads back, a live holder's lock is not stale, a dead one's is, and gc
    takes and releases gc.lock on the full disk."""
    mnt = tmpfs.mount("1m")
    repo = os.path.join(mnt, "repo")
    from mpi4py import MPI
    with vlcc.Checkpointer(repo, comm=MPI.COMM_SELF) as ck:
        ck.register("a", np.arange(10.0))
        ck.checkpoint()
    with open(os.path.join(mnt, "filler"), "wb") as f:
        try:
            os.posix_fallocate(f.fileno(), 0, os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize)
        except OSError:
            pass
    with pytest.raises(OSError):          # the disk is full indeed
        with open(os.path.join(mnt, "probe"), "wb") as f:
            f.write(b"x" * 10)
            f.flush()
            os.fsync(f.fileno())
    lock = os.path.join(repo, "locks", "write-test.lock")
    assert locks.try_create(lock, "write")
    assert os.path.islink(lock)
    doc = locks.read(lock)
    assert doc["pid"] == os.getpid() and doc["kind"] == "write"
    assert not locks.is_stale(lock)
    os.unlink(lock)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(timeout=60)
    os.symlink(f"vlcc-lock write {dead.pid} {locks._BOOT[:8]} {locks._HOST}", lock)
    assert locks.stale_reason(lock) == f"dead pid {dead.pid}"
    out = gcmod.gc(repo)                  # breaks it, takes gc.lock as a symlink
    assert out["broken_locks"] == [{"lock": "locks/write-test.lock", "reason": f"dead pid {dead.pid}"}]
    assert no_locks(repo)
