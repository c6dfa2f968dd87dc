"""The multi-level async engine: async round trips, wait(), restore of a
pending version, bounded memory, schedule-aware prefetch vs LRU, concurrent
writers on branches of one repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import vlcc
from mpi4py import MPI
from vlcc.checkpointer import session

from conftest import SCRIPTS_DIR
from vlcc._mpi import without_launcher


def _block(comm, gshape):
    rows = np.array_split(np.arange(gshape[0]), comm.size)[comm.rank]
    return int(rows[0]) if len(rows) else 0, len(rows)


def _field(gshape, k):
    return (np.arange(np.prod(gshape), dtype=np.float64).reshape(gshape) * 1e-3 + k)


@pytest.mark.mpi
@pytest.mark.parametrize("flush_mpi", ["auto", "0"])
def test_async_roundtrip_wait_and_pending_restore(comm, mpi_tmp, monkeypatch, flush_mpi):
    # "auto": the flusher hashes, agrees and commits on its own communicator
    # (MPI_THREAD_MULTIPLE); "0": the application's thread does (fallback).
    monkeypatch.setenv("VLCC_FLUSH_MPI", flush_mpi)
    G = (37, 11)
    y0, ny = _block(comm, G)
    u = np.zeros((ny, G[1]))
    meta = {"step": -1}
    with vlcc.Checkpointer(os.path.join(mpi_tmp, "r"), comm=comm, mode="async",
                           local_dir=os.path.join(mpi_tmp, "local"), chunk_size=256) as ck:
        ck.register("u", u, global_shape=G, offset=(y0, 0))
        ck.register("meta", vlcc.ValueProvider(get=lambda: dict(meta), set=meta.update))
        ids = []
        for k in range(6):
            u[:] = _field(G, k)[y0:y0 + ny]
            meta["step"] = k
            v = ck.checkpoint(step=k)
            assert v.pending and v.step == k
            ids.append(v.id)
        # A pending (or just flushed) version restores in-process.
        u[:] = -1
        meta["step"] = None
        ck.restore(ids[-1])
        assert np.array_equal(u, _field(G, 5)[y0:y0 + ny]) and meta["step"] == 5
        committed = ck.wait()
        assert [v.id for v in committed] == ids[-len(committed):]
        assert ck.stats["pending"] == 0
        # Lineage: each async version's parent is the one before.
        repo = vlcc.Repository(os.path.join(mpi_tmp, "r"))
        log = repo.log("main")
        assert [v.id for v in log] == ids[::-1]
        assert [v.parent for v in log[:-1]] == ids[::-1][1:]
        # Committed versions restore bit-exact from persistent storage too.
        ck.restore(ids[2])
        assert np.array_equal(u, _field(G, 2)[y0:y0 + ny]) and meta["step"] == 2
    if comm.rank == 0:
        assert repo.verify()["versions"] == 6
        assert np.array_equal(repo.read(ids[4], "u"), _field(G, 4))


@pytest.mark.mpi
def test_async_local_tier_is_cleaned_and_data_reaches_persistent(comm, mpi_tmp):
    local = os.path.join(mpi_tmp, "local")
    u = np.full(1000, comm.rank, dtype=np.int32)
    ck = vlcc.Checkpointer(os.path.join(mpi_tmp, "r"), comm=comm, mode="async", local_dir=local)
    ck.register("u", u)
    for k in range(3):
        u += 1
        ck.checkpoint(step=k)
    ck.close()   # commits what is pending
    comm.Barrier()
    repo = vlcc.Repository(os.path.join(mpi_tmp, "r"))
    assert len(repo.log()) == 3
    assert np.array_equal(repo.read(repo.log()[0], "u", rank=comm.rank), np.full(1000, comm.rank + 3))
    # The per-process local directories are removed at close, and the job's
    # base directory with the last of them: no empty directory is left.
    assert not os.path.exists(local)


@pytest.mark.mpi
def test_spill_to_local_tier_and_restore_bit_exact(comm, mpi_tmp, monkeypatch):
    """A memory budget smaller than one capture: every capture goes to the
    node-local tier instead of waiting; pending spilled versions restore
    from there, committed ones from disk, all bit-exact."""
    monkeypatch.setenv("VLCC_LOCAL_BUDGET", "4MiB")
    G = (64, 300)
    y0, ny = _block(comm, G)
    u = np.zeros((ny, G[1]))
    path = os.path.join(mpi_tmp, "r")
    with vlcc.Checkpointer(path, comm=comm, mode="async", memory_budget=1024,
                           local_dir=os.path.join(mpi_tmp, "local"), chunk_size=4096) as ck:
        ck.register("u", u, global_shape=G, offset=(y0, 0))
        ids = []
        for k in range(4):
            u[:] = _field(G, k)[y0:y0 + ny]
            ids.append(ck.checkpoint(step=k).id)
        u[:] = -1
        ck.restore(ids[-1])            # pending (spilled) or just flushed
        assert np.array_equal(u, _field(G, 3)[y0:y0 + ny])
        ck.wait()
        assert ck.stats["spilled"] >= (1 if ny else 0)
        for k in (0, 2):
            ck.restore(ids[k])
            assert np.array_equal(u, _field(G, k)[y0:y0 + ny])
    if comm.rank == 0:
        repo = vlcc.Repository(path)
        assert repo.verify()["versions"] == 4
        assert np.array_equal(repo.read(ids[1], "u"), _field(G, 1))


@pytest.mark.mpi
def test_async_flush_failure_on_one_rank_raises_on_all(comm, mpi_tmp, monkeypatch):
    """The last rank's flush fails (its node-local directory is replaced by a
    file): every rank raises at its next collective call, the versions
    committed before stay intact, and checkpointing works again after. (One
    simulated node per rank: versions are staged in the node leader's
    directory, here the rank's own.)"""
    monkeypatch.setenv("VLCC_NODE_ID", str(comm.rank))
    u = np.full(500, comm.rank, dtype=np.int64)
    path = os.path.join(mpi_tmp, "r")
    with vlcc.Checkpointer(path, comm=comm, mode="async",
                           local_dir=os.path.join(mpi_tmp, "local")) as ck:
        ck.register("u", u)
        good = ck.checkpoint(step=0).id
        ck.wait()
        root = session(ck).engine.local.root
        assert session(ck).engine.stage.root == root
        if comm.rank == comm.size - 1:
            import shutil
            shutil.rmtree(root)
            open(root, "w").close()
        u += 1
        ck.checkpoint(step=1)
        with pytest.raises(vlcc.StorageError, match="abandoned"):
            ck.wait()
        assert ck.stats["pending"] == 0
        if comm.rank == comm.size - 1:
            os.unlink(root)
            os.makedirs(root)
        u += 1
        again = ck.checkpoint(step=2).id
        ck.wait()
    comm.Barrier()
    repo = vlcc.Repository(path)
    assert [v.id for v in repo.log("main")] == [again, good]
    assert np.array_equal(repo.read(good, "u", rank=comm.rank), np.full(500, comm.rank))
    assert np.array_equal(repo.read(again, "u", rank=comm.rank), np.full(500, comm.rank + 2))


_KILLED = r"""
import os, signal, sys
import numpy as np
import vlcc
path, local = sys.argv[1], sys.argv[2]
u = np.arange(200_000, dtype=np.float64)
ck = vlcc.Checkpointer(path, mode="async", local_dir=local, memory_budget=1024)
ck.register("u", u)
ck.checkpoint(step=0)
ck.wait()                                   # committed: must survive the kill
for k in range(1, 4):
    u += 1
    ck.checkpoint(step=k)                   # spilled to the local tier, flushing
print(os.path.join(local, [n for n in os.listdir(local) if n[0] != "."][0]), flush=True)
os.kill(os.getpid(), signal.SIGKILL)        # mid-flush
"""

_NORMAL = r"""
import sys
import numpy as np
import vlcc
from vlcc.checkpointer import session
u = np.zeros(200_000)
kw = {} if sys.argv[2] == "default" else {"local_dir": sys.argv[2]}
with vlcc.Checkpointer(sys.argv[1], mode="async", **kw) as ck:
    ck.register("u", u)
    v = ck.restore()
    print(session(ck).engine.local.base, v.step, flush=True)
    for k in range(3):
        u += 1
        ck.checkpoint(step=10 + k)
"""


def test_kill_during_spill_then_next_start_reclaims_local_tier(tmp_path):
    """kill -9 while spilled versions flush: the committed version stays
    intact; the next job (another default-style base directory beside the
    dead one) removes the dead job's node-local directory; a normal async job
    leaves no directory behind (also with the default /dev/shm location)."""
    repo, shm = str(tmp_path / "r"), tmp_path / "shm"
    dead_base = shm / f"vlcc-{os.getuid()}-jobA"
    env = dict(without_launcher(), VLCC_LOCAL_BUDGET="64MiB")
    p = subprocess.run([sys.executable, "-c", _KILLED, repo, str(dead_base)], env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == -9, p.stderr[-2000:]
    leftover = p.stdout.strip()
    assert os.path.isdir(leftover) and os.path.exists(os.path.join(leftover, "owner.json"))
    r = vlcc.Repository(repo)
    r.verify()
    last = r.log("main")[0]
    assert np.array_equal(r.read(last, "u"), np.arange(200_000) + last.step)
    for base in (str(shm / f"vlcc-{os.getuid()}-jobB"), "default"):
        q = subprocess.run([sys.executable, "-c", _NORMAL, repo, base], env=env,
                           capture_output=True, text=True, timeout=300)
        assert q.returncode == 0, q.stderr[-2000:]
        used_base, step = q.stdout.split()
        assert not os.path.exists(dead_base)          # reclaimed at start (then empty: removed)
        assert not os.path.exists(used_base)          # nothing left by a normal job
    assert [v.step for v in vlcc.Repository(repo).log("main")][:3] == [12, 11, 10]


_RSS_BURST = r"""
import json, resource, sys
import numpy as np
import vlcc
from mpi4py import MPI
n = 8 << 20                                  # 8 MiB per version
budget = 4 * n
u = np.zeros(n // 8)
u[:] = 1                                     # touched: part of the baseline
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
with vlcc.Checkpointer(sys.argv[1], MPI.COMM_SELF, mode="async", memory_budget=budget,
                       local_dir="none", dedup=False) as ck:
    ck.register("u", u)
    for k in range(30):
        u[:] = k                             # every version is new data
        ck.checkpoint(step=k)
        assert ck.stats["memory_used"] <= budget
    stats = ck.stats
rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"grew": rss1 - rss0, "peak": stats["peak_bytes"], "budget": budget, "n": n}))
"""


def test_memory_budget_bounds_rss(tmp_path):
    """A burst of async checkpoints never holds more than the budget of captures.
    Measured in a fresh process: ru_maxrss is a process-lifetime high-water
    mark, which earlier tests of this process would already have raised."""
    import json
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", _RSS_BURST, str(tmp_path / "r")],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    rec = json.loads(out.stdout.strip().splitlines()[-1])
    assert rec["peak"] <= rec["budget"]
    # 30 unbounded captures would be 240 MiB; the budget allows 32 MiB plus
    # the write path's working memory.
    assert rec["grew"] < 30 * rec["n"] // 2, f"peak RSS grew by {rec['grew'] >> 20} MiB"
    repo = vlcc.Repository(tmp_path / "r")
    assert [v.step for v in repo.log("main")] == list(range(29, -1, -1))
    assert np.array_equal(repo.read("latest", "u"), np.full(rec["n"] // 8, 29.0))


def _replay(path, plan: bool, budget_versions: int = 5, nversions: int = 20):
    u = np.zeros(64 * 1024)                      # 512 KiB per version
    with vlcc.Checkpointer(path, memory_budget=budget_versions * u.nbytes + 1024) as ck:
        ck.register("u", u)
        ids = [v.id for v in reversed(ck.log("main"))]
        assert len(ids) == nversions
        order = ids[::-1]
        if plan:
            ck.plan(order)
        for k, vid in zip(range(nversions - 1, -1, -1), order):
            ck.restore(vid)
            assert u[0] == k and u[-1] == k
        s = ck.stats
        assert s["peak_bytes"] <= ck.stats["memory_budget"]
        return s["hits"] / (s["hits"] + s["misses"]), s


def test_schedule_aware_prefetch_beats_lru(tmp_path):
    path = tmp_path / "r"
    u = np.zeros(64 * 1024)
    with vlcc.Checkpointer(path) as ck:
        ck.register("u", u)
        for k in range(20):
            u[:] = k
            ck.checkpoint(step=k)
    lru, s_lru = _replay(path, plan=False)
    planned, s_plan = _replay(path, plan=True)
    print(f"reverse replay hit rate: LRU {lru:.2f}, schedule-aware {planned:.2f} "
          f"(prefetched {s_plan['prefetched']}, evictions {s_plan['evictions']})")
    assert planned > lru
    assert s_plan["prefetch_hits"] > 0


def test_plan_by_step_and_unknown_step(tmp_path):
    u = np.zeros(10)
    with vlcc.Checkpointer(tmp_path / "r") as ck:
        ck.register("u", u)
        for k in range(3):
            u[:] = k
            ck.checkpoint(step=10 * k)
        vids = ck.plan([20, 0])
        assert len(vids) == 2
        ck.restore(vids[0])
        assert u[0] == 2
        with pytest.raises(vlcc.NotFoundError, match="step 5"):
            ck.plan([5])


def test_concurrent_writers_on_branches(tmp_path):
    """8 independent processes × 20 versions, each on its own branch of one repository."""
    repo_path = str(tmp_path / "shared")
    script = os.path.join(SCRIPTS_DIR, "engine_writer.py")
    procs = [subprocess.Popen([sys.executable, script, repo_path, f"w{i}", "20", str(i)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=without_launcher())
             for i in range(8)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    repo = vlcc.Repository(repo_path)
    assert len(repo.log()) == 160
    for i in range(8):
        lineage = repo.log(f"w{i}")
        assert [v.step for v in lineage] == list(range(19, -1, -1))
        for v in lineage[::5]:
            a = repo.read(v, "x")
            assert np.array_equal(a, np.full(1000, 1000 * i + v.step, dtype=np.int64))
    assert repo.verify()["versions"] == 160


@pytest.mark.parametrize("track,lean", [(False, False), (True, False), (False, True)])
def test_buffers_are_faulted_at_register_not_beside_the_first_flush(tmp_path, monkeypatch,
                                                                    track, lean):
    # register faults in the capture buffer and, when the flush needs the
    # pieces of a tiled leaf in one buffer (dirty tracking), the gather buffer;
    # the first checkpoint, with no version pending before it, faults in
    # nothing more beside its flush (that cost the application ~100 ms here).
    # When a gather buffer may not be had (memory short: VLCC_GATHER_MAX)
    # and nothing needs the pieces in one buffer (no dirty tracking, no
    # codec), the flush reads them out of the capture: no gather buffer at
    # all (layout/stored.py), and the version is the same.
    from vlcc.commit import rankwrite
    if lean:
        monkeypatch.setenv("VLCC_GATHER_MAX", "0")
    else:
        monkeypatch.delenv("VLCC_GATHER_MAX", raising=False)
    u = np.arange(96 * 64, dtype=np.float64).reshape(96, 64)
    rankwrite.GATHER_POOL.clear()
    with vlcc.Checkpointer(str(tmp_path / "r"), mode="async", chunk_size=4096,
                           memory_budget=8 * u.nbytes, track_dirty=track) as ck:
        ck.register("u", u, global_shape=u.shape, offset=(0, 0))
        eng = session(ck).engine
        eng._prefetcher.submit(int).result()       # the register-time faulting is done
        want = [] if lean else [u.nbytes]
        assert ck.stats["prefaulted"] == u.nbytes
        assert rankwrite.GATHER_POOL.sizes() == want
        for k in range(2):
            u += 1.0
            ck.checkpoint(step=k)
            ck.wait()
        eng._prefetcher.submit(int).result()
        assert ck.stats["prefaulted"] == u.nbytes
        # the flushes used the reserved gather buffer (if any) and gave it back
        assert rankwrite.GATHER_POOL.sizes() == want
        assert vlcc.Repository(str(tmp_path / "r")).read("latest", "u").tobytes() == u.tobytes()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_shared_scratch_local_dir_keeps_what_vlcc_did_not_make(tmp_path, mode):
    """local_dir pointed at a shared scratch folder: vlcc removes only the
    directory it created and marked; unrelated subdirectories (even ones named
    like a dead vlcc process's, or old and empty) and the folder itself stay."""
    import socket
    scratch = tmp_path / "scratch"
    (scratch / "results").mkdir(parents=True)
    (scratch / "results" / "keep.txt").write_text("x")
    (scratch / f"{socket.gethostname()}-999999").mkdir()          # a dead pid's name, unmarked
    (scratch / "old-empty").mkdir()
    os.utime(scratch / "old-empty", (0, 0))
    before = sorted(os.listdir(scratch))
    u = np.arange(1000.0)
    with vlcc.Checkpointer(tmp_path / "repo", comm=MPI.COMM_SELF, mode=mode,
                           local_dir=str(scratch)) as ck:
        ck.register("u", u)
        v = ck.checkpoint()
        mine = [n for n in os.listdir(scratch) if n not in before]
        assert len(mine) == 1
        marker = json.load(open(scratch / mine[0] / "owner.json"))
        assert marker["pid"] == os.getpid() and marker["kind"] == "local"
        assert marker["repository_id"] == ck.repository.config["repository_id"]
    assert sorted(os.listdir(scratch)) == before
    assert (scratch / "results" / "keep.txt").read_text() == "x"
    assert vlcc.Repository(tmp_path / "repo").read(v, "u").tobytes() == u.tobytes()


def test_local_base_vlcc_created_goes_at_close(tmp_path):
    base = tmp_path / "made-by-vlcc"
    with vlcc.Checkpointer(tmp_path / "repo", comm=MPI.COMM_SELF, mode="async",
                           local_dir=str(base)) as ck:
        ck.register("u", np.arange(10.0))
        ck.checkpoint()
        assert (base / ".vlcc-base").exists()
    assert not base.exists()


@pytest.mark.mpi
@pytest.mark.parametrize("flush_mpi", ["auto", "0"])
def test_lazy_capture_settle_and_pending_restore(comm, mpi_tmp, monkeypatch, flush_mpi):
    """checkpoint(lazy=...): the named arrays are copied after the call
    returns (with flusher collectives), the others before; after settle() they
    may change; restore of a pending lazy version sees the captured bytes."""
    import time
    import vlcc.engine.engine as engine
    real = engine._copy_all

    def slow(jobs):              # a slow copy: modifying before settle() would show
        time.sleep(0.3)
        real(jobs)
    monkeypatch.setattr(engine, "_copy_all", slow)
    monkeypatch.setenv("VLCC_FLUSH_MPI", flush_mpi)
    a = np.arange(50_000, dtype=np.float64) + comm.rank
    b = np.ones(1000)
    with vlcc.Checkpointer(os.path.join(mpi_tmp, "r"), comm=comm, mode="async") as ck:
        ck.register("a", a)
        ck.register("b", b)
        ids = []
        for k in range(3):
            v = ck.checkpoint(step=k, lazy=["a"])
            b += 1                   # eager: already copied
            ck.settle()
            a += 1                   # lazy: copied by now
            ids.append(v.id)
        a[:] = -1
        ck.restore(ids[1])
        assert np.array_equal(a, np.arange(50_000) + comm.rank + 1) and np.all(b == 2)
        ck.wait()
    repo = vlcc.Repository(os.path.join(mpi_tmp, "r"))
    for k, vid in enumerate(ids):
        assert np.array_equal(repo.read(vid, "a", rank=comm.rank), np.arange(50_000) + comm.rank + k)
        assert np.all(repo.read(vid, "b", rank=comm.rank) == 1 + k)


def test_small_local_tier_evicts_promoted_copies_and_loses_no_version(tmp_path, tmpfs):
    """A 5 MiB node-local tier and 2.1 MB versions: the copies kept after
    promotion are evicted when the next version needs the room, and a version
    that still does not fit goes straight to the repository; none is lost."""
    local = tmpfs.mount("5m")
    rng = np.random.default_rng(1)
    u = rng.random(260_000)          # 2.1 MB: two kept copies and a new version do not fit
    with vlcc.Checkpointer(tmp_path / "repo", comm=MPI.COMM_SELF, mode="async",
                           local_dir=local) as ck:
        ck.register("u", u)
        ids, data = [], []
        for k in range(6):
            u[:] = rng.random(u.size)
            data.append(u.copy())
            ids.append(ck.checkpoint(step=k).id)
        ck.wait()
    repo = vlcc.Repository(tmp_path / "repo")
    assert [v.id for v in repo.log()] == ids[::-1]
    for vid, want in zip(ids, data):
        assert repo.read(vid, "u").tobytes() == want.tobytes()


def test_failed_flush_is_reported_at_the_next_call_not_at_close(tmp_path, tmpfs):
    """A repository that fills up under async checkpoints: the flush failure
    comes out of the next ``checkpoint()`` or ``wait()`` (naming the abandoned
    version), ``close()`` has nothing left to report, and every version that
    did commit reads back bit-exact."""
    root = tmpfs.mount("3m")
    u = np.zeros(200_000)                 # 1.6 MB of new bytes per version
    raised, kept = [], {}
    ck = vlcc.Checkpointer(os.path.join(root, "repo"), comm=MPI.COMM_SELF, mode="async",
                           local_dir="none")
    ck.register("u", u)
    for k in range(4):
        u[:] = np.random.default_rng(k).random(u.size)
        try:
            kept[ck.checkpoint(step=k).id] = u.copy()
        except vlcc.StorageError as exc:
            raised.append(str(exc))
    try:
        ck.wait()
    except vlcc.StorageError as exc:
        raised.append(str(exc))
    ck.close()                            # nothing pending: nothing to raise here
    assert raised and all("no space left" in m and "abandoned" in m for m in raised), raised
    repo = vlcc.Repository(os.path.join(root, "repo"))
    committed = [v.id for v in repo.log()]
    assert committed and set(committed) < set(kept)
    for vid in committed:
        assert repo.read(vid, "u").tobytes() == kept[vid].tobytes()


def test_size_pool_takes_by_size_and_drops_the_oldest():
    """engine/buffers.SizePool, the one free list of buffers by size: exact
    sizes, newest of a size first, ``keep`` drops the oldest, bytes counted."""
    from vlcc.engine.buffers import SizePool
    a, b, c = np.zeros(8, np.uint8), np.zeros(16, np.uint8), np.zeros(8, np.uint8)
    pool = SizePool(keep=2)
    pool.give(a)
    pool.give(b)
    pool.give(b)                                 # the same buffer twice is held once
    assert pool.nbytes == 24 and len(pool) == 2 and pool.take(4) is None
    pool.give(c)                                 # full: a, the oldest, is dropped
    assert sorted(pool.sizes()) == [8, 16] and pool.take(8) is c and pool.take(8) is None
    pool = SizePool()
    for buf in (a, b, c):
        pool.give(buf)
    assert pool.take(8) is c and pool.drop_largest() == 16 and pool.nbytes == 8
    assert pool.drop_largest() == 8 and pool.drop_largest() == 0 and len(pool) == 0
