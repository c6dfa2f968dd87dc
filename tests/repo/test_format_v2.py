"""Format 2 (docs/format.md, "Changes"): concurrent writers on one branch,
BP5 metadata checksums, one lock implementation, and the small repository
rules that came with it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import vlcc
from vlcc.repo import locks, refs
from vlcc.repo.paths import RepoPaths
from conftest import TESTS_DIR


def _self():
    from mpi4py import MPI
    return MPI.COMM_SELF


# -- two writers on one branch ------------------------------------------------------------
def test_two_writers_on_one_branch_keep_every_version_on_the_lineage(tmp_path):
    path = str(tmp_path / "r")
    a, b = np.zeros(4), np.ones(4)
    with vlcc.Checkpointer(path, _self()) as ck_a, vlcc.Checkpointer(path, _self()) as ck_b:
        ck_a.register("x", a)
        ck_b.register("x", b)
        made = [ck_a.checkpoint(step=0), ck_b.checkpoint(step=1), ck_a.checkpoint(step=2),
                ck_b.checkpoint(step=3)]
    log = vlcc.Repository(path).log("main")
    assert [v.id for v in log] == [v.id for v in reversed(made)]
    rebased = [v for v in log if "rebased_from" in v.manifest]
    assert [v.step for v in rebased] == [3, 2, 1]
    assert rebased[-1].manifest["rebased_from"] is None and rebased[-1].parent == made[0].id


def test_if_moved_fail_raises_branch_moved_and_commits_nothing(tmp_path):
    path = str(tmp_path / "r")
    with vlcc.Checkpointer(path, _self(), if_moved="fail") as ck_a, \
            vlcc.Checkpointer(path, _self()) as ck_b:
        ck_a.register("x", np.zeros(4))
        ck_b.register("x", np.ones(4))
        v0 = ck_a.checkpoint()
        v1 = ck_b.checkpoint()
        with pytest.raises(vlcc.BranchMovedError, match=f"moved to {v1.id}"):
            ck_a.checkpoint()
    repo = vlcc.Repository(path)
    assert [v.id for v in repo.log("main")] == [v1.id, v0.id]
    assert len(repo.version_ids()) == 2


def test_restoring_an_older_version_and_continuing_is_not_a_move(tmp_path):
    path = str(tmp_path / "r")
    with vlcc.Checkpointer(path, _self(), if_moved="fail") as ck:
        ck.register("x", np.zeros(4))
        v0 = ck.checkpoint()
        ck.checkpoint()
        ck.restore(v0)
        v2 = ck.checkpoint()
    assert v2.parent == v0.id and vlcc.Repository(path).branch_head("main") == v2.id


def test_set_branch_compare_and_swap(tmp_path):
    path = str(tmp_path / "r")
    with vlcc.Checkpointer(path, _self()) as ck:
        ck.register("x", np.zeros(2))
        v0, v1 = ck.checkpoint(), ck.checkpoint()
    paths = RepoPaths(path)
    refs.set_branch(paths, "main", v0.id, expect=v1.id)
    with pytest.raises(vlcc.BranchMovedError, match=f"it is at {v0.id}, expected {v1.id}"):
        refs.set_branch(paths, "main", v1.id, expect=v1.id)
    assert refs.read_ref(paths, "main" and "branch", "main") == v0.id
    refs.set_branch(paths, "other", v1.id, expect=None)
    with pytest.raises(vlcc.BranchMovedError):
        refs.set_branch(paths, "other", v0.id, expect=None)


# -- BP5 metadata checksums ---------------------------------------------------------------
_FLIP = r"""
import os, sys, numpy as np, vlcc
path, fname, step = sys.argv[1], sys.argv[2], int(sys.argv[3])
repo = vlcc.Repository(path)
vid = repo.log()[0].id
f = os.path.join(path, "data", vid, "r0.bp", fname)
raw = bytearray(open(f, "rb").read())
bad = 0
for off in range(0, len(raw), step):
    raw[off] ^= 0xFF
    open(f, "wb").write(raw)
    for call in (lambda: repo.verify(vid), lambda: repo.read(vid, "u")):
        try:
            call()
        except vlcc.CorruptionError as exc:
            assert fname in str(exc) and vid in str(exc), exc
            bad += 1
        else:
            raise SystemExit(f"byte {off} of {fname} flipped, no CorruptionError")
    raw[off] ^= 0xFF
open(f, "wb").write(raw)
np.testing.assert_array_equal(repo.read(vid, "u"), np.arange(64.0))
print(bad)
"""


@pytest.mark.parametrize("fname", ["md.0", "md.idx", "mmd.0"])
def test_flipped_bp5_metadata_byte_is_corruption_not_a_crash(tmp_path, fname):
    path = str(tmp_path / "r")
    with vlcc.Checkpointer(path, _self(), coalesce_below=0) as ck:
        ck.register("u", np.arange(64.0))
        ck.checkpoint()
    size = os.path.getsize(os.path.join(path, "data", vlcc.Repository(path).log()[0].id,
                                        "r0.bp", fname))
    out = subprocess.run([sys.executable, "-c", _FLIP, path, fname, str(max(1, size // 40))],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:] + out.stdout[-500:]
    assert int(out.stdout.split()[-1]) > 0


# -- locks ----------------------------------------------------------------------------------
def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_lock_of_a_dead_process_is_stale_at_once(tmp_path):
    path = str(tmp_path / "x.lock")
    with open(path, "w") as f:
        json.dump(dict(locks.record("gc"), pid=_dead_pid()), f)
    assert locks.is_stale(path)
    with open(path, "w") as f:
        json.dump(locks.record("gc"), f)              # ours: alive
    assert not locks.is_stale(path)
    with open(path, "w") as f:
        json.dump(dict(locks.record("gc"), boot_id="another-boot"), f)
    assert locks.is_stale(path) == bool(locks.boot_id())
    with open(path, "w") as f:
        json.dump(dict(locks.record("gc"), host="elsewhere", pid=1), f)
    assert not locks.is_stale(path)                     # cannot ask another host: by age
    old = time.time() - 2 * locks.STALE_SECONDS
    os.utime(path, (old, old))
    assert locks.is_stale(path)


def test_live_lock_on_this_host_is_never_stale_by_age(tmp_path):
    # A checkpoint that runs for hours, or an async version pending between
    # checkpoints hours apart, keeps its writer lock: gc must not break it.
    path = str(tmp_path / "x.lock")
    with open(path, "w") as f:
        json.dump(locks.record("writer"), f)         # this process: alive
    old = time.time() - 10 * locks.STALE_SECONDS
    os.utime(path, (old, old))
    assert locks.stale_reason(path) is None


def test_empty_lock_file_is_stale_after_its_grace(tmp_path):
    path = str(tmp_path / "x.lock")
    open(path, "w").close()
    assert not locks.is_stale(path)
    old = time.time() - 2 * locks.EMPTY_GRACE
    os.utime(path, (old, old))
    assert locks.is_stale(path)


def test_gc_and_checkpoint_break_locks_of_killed_jobs(tmp_path):
    path = str(tmp_path / "r")
    with vlcc.Checkpointer(path, _self()) as ck:
        ck.register("x", np.zeros(2))
        ck.checkpoint()
    d = RepoPaths(path).locks_dir
    dead = _dead_pid()
    for name in ("write-h-1-aa.lock", "gc.lock"):
        with open(os.path.join(d, name), "w") as f:
            json.dump(dict(locks.record("write"), pid=dead), f)
    branch_lock = os.path.join(path, "refs", "branches", "main.lock")
    open(branch_lock, "w").close()
    old = time.time() - 2 * locks.EMPTY_GRACE
    os.utime(branch_lock, (old, old))
    vlcc.Repository(path).gc(grace=0, timeout=1)        # no LockBusyError, no hour to wait
    with vlcc.Checkpointer(path, _self()) as ck:
        ck.register("x", np.zeros(2))
        ck.checkpoint()
    assert os.listdir(d) == [] and not os.path.exists(branch_lock)


# -- repository creation and Version repr (issue 18) ----------------------------------------
def test_non_empty_directory_is_not_made_a_repository(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(vlcc.RepositoryError, match="not empty and not a vlcc repository"):
        vlcc.Checkpointer(str(tmp_path), _self())
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]
    with vlcc.Checkpointer(str(tmp_path), _self(), create=True) as ck:
        ck.register("x", np.zeros(2))
        ck.checkpoint()
    empty = tmp_path / "empty"
    empty.mkdir()
    vlcc.Checkpointer(str(empty), _self()).close()
    assert (empty / "vlcc.json").exists()


def test_version_repr_is_short(tmp_path):
    with vlcc.Checkpointer(str(tmp_path / "r"), _self()) as ck:
        ck.register("x", np.zeros(2))
        v = ck.checkpoint(step=7, attrs={"a": list(range(100))})
    text = repr(v)
    assert text.startswith(f"<vlcc.Version {v.id} branch='main' step=7 ") and text.endswith("Z>")
    assert len(text) < 80


# -- old repositories ------------------------------------------------------------------------
def test_writing_into_a_format_1_repository_upgrades_it(tmp_path):
    import shutil
    src = os.path.join(TESTS_DIR, "fixtures", "format-v1")
    path = str(tmp_path / "r")
    shutil.copytree(src, path)
    u = np.zeros((6, 5))
    with vlcc.Checkpointer(path, _self(), branch="exp") as ck:
        ck.register("heat/u", u, global_shape=(6, 5), offset=(0, 0))
        ck.restore(strict=False)
        u += 1
        v = ck.checkpoint(step=99)
    repo = vlcc.Repository(path)
    from vlcc.repo.config import FORMAT_VERSION
    from vlcc.repo.manifest import MANIFEST_VERSION
    assert repo.config["format_version"] == FORMAT_VERSION and repo.config["upgraded_from"] == 1
    assert v.manifest["vlcc_manifest"] == MANIFEST_VERSION
    assert [x.manifest["vlcc_manifest"] for x in repo.log("exp")] == [MANIFEST_VERSION, 1, 1, 1]
    np.testing.assert_array_equal(repo.read(v, "heat/u"), u)
    assert repo.verify()["versions"] == 4


# -- irregular decompositions ---------------------------------------------------------------
@pytest.mark.mpi
def test_irregular_decomposition_round_trips_and_restores_n_to_m(mpi_tmp):
    """Rank r holds the (P-1-r)-th block, of uneven sizes: not a grid in rank
    order, so format 2 stores a decomposition table; restore it regularly."""
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    p, r = comm.size, comm.rank
    sizes = [2 + (i % 3) for i in range(p)]
    cuts = np.concatenate([[0], np.cumsum(sizes)])
    n = int(cuts[-1])
    glob = np.arange(n * 3, dtype=np.float64).reshape(n, 3) * 1.5
    k = p - 1 - r
    mine = glob[cuts[k]:cuts[k + 1]].copy()
    path = os.path.join(mpi_tmp, "irr")
    with vlcc.Checkpointer(path, comm, chunk_size=40) as ck:
        ck.register("u", mine, global_shape=(n, 3), offset=(int(cuts[k]), 0))
        v = ck.checkpoint()
    e = v.providers["u"]
    assert ("table" in e["decomposition"]) == (p > 1)
    repo = vlcc.Repository(path)
    np.testing.assert_array_equal(repo.read(v, "u"), glob)
    assert [b["offset"] for b in repo.blocks(v, "u")] == [[int(cuts[p - 1 - i]), 0] for i in range(p)]
    lo, hi = n * r // p, n * (r + 1) // p           # a regular split now
    out = np.zeros((hi - lo, 3))
    with vlcc.Checkpointer(path, comm) as ck:
        ck.register("u", out, global_shape=(n, 3), offset=(lo, 0))
        ck.restore(v)
    np.testing.assert_array_equal(out, glob[lo:hi])
