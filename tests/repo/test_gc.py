"""gc / prune / du (vlcc/repo/gc.py) and their CLI: gc after prune reclaims
space and leaves every remaining version restorable and verify-clean; gc
never deletes what an in-flight checkpoint may reference."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import vlcc
from vlcc.repo import gc as gcmod
from vlcc.repo import locks

CHUNK = 4096


def tree_bytes(path):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _d, fs in os.walk(path) for f in fs)


def cli(*args):
    r = subprocess.run([sys.executable, "-m", "vlcc.cli", *map(str, args)], capture_output=True,
                       text=True, timeout=120)
    return r


def make_history(repo, nversions=5, per_version_change=2):
    """Versions where each step rewrites a few chunks: later versions reference
    earlier ones' files."""
    rng = np.random.default_rng(0)
    u = rng.random(16 * CHUNK // 8)
    states = []
    with vlcc.Checkpointer(repo, chunk_size=CHUNK) as ck:
        ck.register("u", u)
        for step in range(nversions):
            for c in rng.choice(16, per_version_change, replace=False):
                u[c * CHUNK // 8:(c + 1) * CHUNK // 8] = rng.random(CHUNK // 8)
            v = ck.checkpoint(step=step)
            states.append((v.id, u.copy()))
    return states


def test_prune_then_gc_reclaims_and_keeps_the_rest_restorable(tmp_path):
    repo = str(tmp_path / "r")
    states = make_history(repo)
    before = tree_bytes(os.path.join(repo, "data"))
    res = gcmod.prune(repo, keep_last=2)
    assert len(res["removed_versions"]) == 3
    assert set(res["kept_versions"]) == {states[-1][0], states[-2][0]}
    # nothing reclaimed yet; gc reclaims files no kept version references
    assert tree_bytes(os.path.join(repo, "data")) == before
    out = gcmod.gc(repo, grace=0)
    after = tree_bytes(os.path.join(repo, "data"))
    assert out["reclaimed_bytes"] > 0 and after == before - out["reclaimed_bytes"]
    r = vlcc.Repository(repo)
    assert r.verify()["versions"] == 2
    for vid, u in states[-2:]:
        np.testing.assert_array_equal(r.read(vid, "u"), u)
    # the first version's file is still referenced (most chunks never changed)
    assert states[0][0] in out["kept_for_references"]
    # a second gc finds nothing more
    assert gcmod.gc(repo, grace=0)["removed"] == []


def _foreign_writer_lock(repo, age):
    """A writer lock of another host (its pid cannot be checked), ``age`` seconds old."""
    path = os.path.join(repo, "locks", "write-otherhost-4242-abcd.lock")
    with open(path, "w") as f:
        json.dump(dict(locks.record("write"), host="otherhost", pid=4242), f)
    t = os.path.getmtime(path) - age
    os.utime(path, (t, t))
    return path


def _orphan(repo, vid="00000000deadbeef"):
    orphan = os.path.join(repo, "data", vid)
    os.makedirs(os.path.join(orphan, "r0.bp"))
    with open(os.path.join(orphan, "r0.bp", "data.0"), "wb") as f:
        f.write(b"x" * 1000)
    return orphan


def test_gc_removes_a_dead_writers_data_at_once_and_keeps_grace_only_when_unsure(tmp_path):
    repo = str(tmp_path / "r")
    states = make_history(repo, nversions=2)
    # no writer lock at all: the writer of a data dir without manifest is dead
    orphan = _orphan(repo)
    out = gcmod.gc(repo)        # default grace: irrelevant, nobody can still write there
    assert not os.path.exists(orphan) and "data/00000000deadbeef/r0.bp" in out["removed"]
    # a lock of another host broken by age (its holder cannot be asked): grace applies
    orphan = _orphan(repo)
    lock = _foreign_writer_lock(repo, age=2 * locks.STALE_SECONDS)
    out = gcmod.gc(repo)
    assert not os.path.exists(lock)
    assert out["kept_in_flight"] == ["00000000deadbeef"] and os.path.isdir(orphan)
    assert [b["reason"] for b in out["broken_locks"]] == [f"older than {locks.STALE_SECONDS:.0f} s (host otherhost)"]
    _foreign_writer_lock(repo, age=2 * locks.STALE_SECONDS)
    out = gcmod.gc(repo, grace=0)
    assert not os.path.exists(orphan) and "data/00000000deadbeef/r0.bp" in out["removed"]
    # a fresh lock of another host is live: gc waits, then deletes nothing
    lock = _foreign_writer_lock(repo, age=0)
    _orphan(repo)
    with pytest.raises(vlcc.LockBusyError, match="in flight"):
        gcmod.gc(repo, grace=0, timeout=0.2)
    assert os.path.isdir(orphan)
    os.unlink(lock)
    r = vlcc.Repository(repo)
    r.verify()
    np.testing.assert_array_equal(r.read(states[-1][0], "u"), states[-1][1])


def test_in_flight_index_protects_the_files_it_references(tmp_path):
    """A data dir without manifest whose writer may live (a lock of another host
    broken by age) keeps, during the grace period, the files of pruned versions
    its index references."""
    repo = str(tmp_path / "r")
    states = make_history(repo, nversions=3)
    # simulate an in-flight commit: copy the head's index into a new data dir
    # without a manifest, then prune everything but the head and drop the head too
    head = states[-1][0]
    inflight = os.path.join(repo, "data", "ffffffff00000001")
    os.makedirs(inflight)
    with open(os.path.join(repo, "data", head, "r0.idx.json")) as f:
        idx = f.read()
    with open(os.path.join(inflight, "r0.idx.json"), "w") as f:
        f.write(idx)
    gcmod.prune(repo, keep_last=1)
    os.unlink(os.path.join(repo, "versions", f"{head}.json"))   # no live version at all
    _foreign_writer_lock(repo, age=2 * locks.STALE_SECONDS)
    out = gcmod.gc(repo, grace=3600)
    referenced = set(json.loads(idx)["files"])
    for rel in referenced:
        assert os.path.isdir(os.path.join(repo, *rel.split("/"))), rel
        assert rel not in out["removed"]


def test_gc_waits_for_a_writer_and_a_writer_waits_for_gc(tmp_path):
    repo = str(tmp_path / "r")
    make_history(repo, nversions=2)
    layout = vlcc.repo.paths.RepoPaths(repo)
    lock = locks.acquire_writer(layout)
    with pytest.raises(vlcc.LockBusyError, match="in flight"):
        gcmod.gc(repo, grace=0, timeout=0.2)
    locks.release(lock)
    # while gc holds the repository, a checkpoint waits until it is done: no
    # manifest may appear while gc.lock is held (the writer is ready and
    # checkpointing, it takes well under the 2 s we hold the lock)
    before = set(os.listdir(os.path.join(repo, "versions")))
    ready = threading.Event()
    done = []
    with locks.gc_exclusive(layout):
        def writer():
            with vlcc.Checkpointer(repo, chunk_size=CHUNK) as ck:
                ck.register("u", np.zeros(16 * CHUNK // 8))
                ready.set()
                done.append(ck.checkpoint().id)
        t = threading.Thread(target=writer)
        t.start()
        assert ready.wait(60)
        t.join(2.0)
        assert set(os.listdir(os.path.join(repo, "versions"))) == before
        assert not done
    t.join(60)
    assert done and f"{done[0]}.json" in os.listdir(os.path.join(repo, "versions"))
    vlcc.Repository(repo).verify()


def test_gc_racing_with_writers_loses_nothing(tmp_path):
    repo = str(tmp_path / "r")
    make_history(repo, nversions=2)
    errors, written = [], []

    def writer():
        try:
            rng = np.random.default_rng(1)
            u = rng.random(16 * CHUNK // 8)
            with vlcc.Checkpointer(repo, chunk_size=CHUNK) as ck:
                ck.register("u", u)
                for _ in range(15):
                    u[:CHUNK // 8] = rng.random(CHUNK // 8)
                    written.append((ck.checkpoint().id, u.copy()))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=writer)
    t.start()
    pruned, collected = set(), 0
    while t.is_alive():
        try:
            pruned.update(gcmod.prune(repo, keep_last=3, timeout=5)["removed_versions"])
            if gcmod.gc(repo, grace=0, timeout=5)["removed"]:
                collected += 1
        except vlcc.LockBusyError:
            pass
    t.join()
    assert not errors, errors
    # gc really raced with the writer: it pruned and collected while it wrote
    assert pruned and collected, (pruned, collected)
    assert not pruned & set(os.listdir(os.path.join(repo, "versions")))
    gcmod.prune(repo, keep_last=3)
    gcmod.gc(repo, grace=0)
    r = vlcc.Repository(repo)
    assert r.verify()["versions"] == 3
    for vid, u in written[-3:]:
        np.testing.assert_array_equal(r.read(vid, "u"), u)


def test_du_reports_logical_and_stored(tmp_path):
    repo = str(tmp_path / "r")
    states = make_history(repo, nversions=3, per_version_change=1)
    d = gcmod.du(repo)
    vs = {v["id"]: v for v in d["versions"]}
    first, last = vs[states[0][0]], vs[states[-1][0]]
    assert first["logical_bytes"] == last["logical_bytes"] == 16 * CHUNK
    assert first["new_chunk_bytes"] == 16 * CHUNK and first["reused_bytes"] == 0
    assert last["new_chunk_bytes"] == CHUNK and last["reused_bytes"] == 15 * CHUNK
    assert d["branches"]["main"]["versions"] == 3
    assert d["total"]["logical_bytes"] == 3 * 16 * CHUNK
    assert d["total"]["stored_bytes"] == tree_bytes(os.path.join(repo, "data"))


def test_cli_gc_prune_du(tmp_path):
    repo = str(tmp_path / "r")
    states = make_history(repo, nversions=4)
    r = cli("du", repo, "--json")
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["versions"]) == 4
    r = cli("prune", repo, "--keep-last", "1", "--dry-run")
    assert r.returncode == 0 and "would remove 3 version(s)" in r.stdout
    assert len(vlcc.Repository(repo).version_ids()) == 4
    r = cli("prune", repo, "--keep-last", "1")
    assert r.returncode == 0, r.stderr
    r = cli("gc", repo, "--grace", "0", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["reclaimed_bytes"] > 0
    r = cli("du", repo)
    assert r.returncode == 0 and states[-1][0] in r.stdout
    np.testing.assert_array_equal(vlcc.Repository(repo).read(states[-1][0], "u"), states[-1][1])
    r = cli("prune", repo, "--keep-last", "0")
    assert r.returncode == 2 and "keep_last" in r.stderr      # usage
    r = cli("gc", str(tmp_path / "nothing"))
    assert r.returncode == 3 and "no repository" in r.stderr  # not found


def test_log_after_prune_stops_at_the_pruned_lineage(tmp_path):
    repo = str(tmp_path / "r")
    states = make_history(repo)
    gcmod.prune(repo, keep_last=2)
    log = vlcc.Repository(repo).log("main")
    assert [v.id for v in log] == [states[-1][0], states[-2][0]]
    assert log[-1].parent == states[-3][0]      # the pruned parent stays named


def test_gc_waits_for_pending_async_versions(tmp_path, monkeypatch):
    """An async version holds the writer lock until it is committed: gc cannot
    delete the files its chunks reference in the meantime."""
    monkeypatch.setenv("VLCC_FLUSH_MPI", "0")   # the commit waits for ck.wait(), not the flusher
    repo = str(tmp_path / "r")
    states = make_history(repo, nversions=2)
    u = states[-1][1].copy()
    with vlcc.Checkpointer(repo, chunk_size=CHUNK, mode="async", local_dir="none") as ck:
        ck.register("u", u)
        u[:CHUNK // 8] += 1.0                    # one new chunk, the rest references v1
        v = ck.checkpoint(step=9)
        assert v.pending
        # not committed before the next collective call (VLCC_FLUSH_MPI=0): its
        # writer lock is held, however fast the flusher wrote it
        with pytest.raises(vlcc.LockBusyError):
            gcmod.gc(repo, grace=0, timeout=0.5)
        ck.wait()
        out = gcmod.gc(repo, grace=0, timeout=5)
    assert out["live_versions"] == 3 and out["kept_in_flight"] == []
    assert not [rel for rel in out["removed"] if rel.startswith(f"data/{v.id}/")]
    r = vlcc.Repository(repo)
    assert np.array_equal(r.read(v.id, "u"), u)
    assert r.verify()["versions"] == 3


def test_a_writer_holding_a_lock_takes_another_while_gc_waits(tmp_path):
    """Async: a process whose pending version holds a writer lock checkpoints
    again while gc holds gc.lock and waits for that very lock. Backing off
    would deadlock both (gc times out, nothing reclaimed); gc cannot pass
    while the first lock exists, so the second is taken at once."""
    repo = str(tmp_path / "r")
    make_history(repo, nversions=1)
    layout = vlcc.repo.paths.RepoPaths(repo)
    gcl = os.path.join(layout.locks_dir, locks.GC_LOCK)
    assert locks.try_create(gcl, "gc")               # a live gc (this process) is waiting
    try:
        with pytest.raises(vlcc.LockBusyError, match="gc lock"):
            locks.acquire_writer(layout, timeout=0.2)   # no lock held yet: backs off
        assert not locks.list_locks(layout.locks_dir, "write-")
        first = os.path.join(layout.locks_dir, "write-first.lock")
        assert locks.try_create(first, "write")
        locks._HELD_WRITERS.add(first)                 # as acquire_writer records it
        second = locks.acquire_writer(layout, timeout=0.2)
        assert os.path.exists(second)
        # the waiting gc sees both: it cannot pass while they exist
        assert locks.list_locks(layout.locks_dir, "write-") == sorted([first, second])
        locks.release(first)
        locks.release(second)
    finally:
        locks.release(gcl)
    assert not os.listdir(layout.locks_dir)
