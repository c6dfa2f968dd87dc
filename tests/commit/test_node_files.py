"""Format 4 node files (docs/format.md, 3.4): the ranks of a node share one
BP5 data file and one index per version. Nodes are simulated with
VLCC_NODE_ID (set per rank before the Checkpointer is made), so 1–3 nodes
exist at 1, 2 and 3 ranks. Checks the files per version, N→M restore across
node layouts, dedup across versions (chunks referencing older node files),
verify/gc/du/export, and SIGKILL mid-write."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest

import vlcc
from vlcc.io.nodefile import node_layout, node_var
from vlcc.tools.export import export
from vlcc.repo.manifest import rank_indexes
from vlcc.repo.paths import RepoPaths

GLOBAL = (24, 40)
LAYOUTS = {"pairs": lambda r: r // 2, "own": lambda r: r, "one": lambda r: 0}


def _rows(rank, size):
    return np.array_split(np.arange(GLOBAL[0]), size)[rank]


def _global(k):
    return np.arange(np.prod(GLOBAL), dtype=np.float64).reshape(GLOBAL) * (k + 1)


def _make(path, comm, k, layout, monkeypatch, **kw):
    monkeypatch.setenv("VLCC_NODE_FILES", "1")
    monkeypatch.setenv("VLCC_NODE_ID", str(LAYOUTS[layout](comm.rank)))
    rows = _rows(comm.rank, comm.size)
    u = _global(k)[rows[0]:rows[-1] + 1].copy()
    own = np.full(1000 + 37 * comm.rank, comm.rank, np.int32)
    ck = vlcc.Checkpointer(path, comm, chunk_size=1024, **kw)
    ck.register("u", u, global_shape=GLOBAL, offset=(int(rows[0]), 0))
    ck.register("own", own)
    return ck, u, own


def _on_root(comm, check):
    """Run ``check`` on rank 0; every rank fails if it failed (no rank hangs
    in a barrier behind a failed assertion)."""
    err = None
    if comm.rank == 0:
        try:
            check()
        except Exception as exc:   # noqa: BLE001 - reported on every rank
            err = f"{type(exc).__name__}: {exc}"
    err = comm.bcast(err, root=0)
    assert err is None, err


def _files(path, vid):
    out = []
    for root, _d, fs in os.walk(os.path.join(path, "data", vid)):
        out += [os.path.relpath(os.path.join(root, f), path) for f in fs]
    return sorted(out)


@pytest.mark.mpi
@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_files_per_version_are_per_node(mpi_tmp, monkeypatch, layout, mode):
    """Sync, and async whose flusher writes straight to the repository on
    its own communicator (no node-local staging): one data file and one
    index per node."""
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    monkeypatch.delenv("VLCC_LOCAL_DIR", raising=False)
    monkeypatch.setenv("VLCC_LOCAL_STAGE", "0")
    nnodes = len({LAYOUTS[layout](r) for r in range(comm.size)})
    ck, u, own = _make(mpi_tmp, comm, 0, layout, monkeypatch, mode=mode)
    v = ck.checkpoint(step=1)
    if mode == "async":
        ck.wait()
    u[...] = -1
    own[...] = -1
    ck.restore(v.id)
    rows = _rows(comm.rank, comm.size)
    assert np.array_equal(u, _global(0)[rows[0]:rows[-1] + 1])
    assert (own == comm.rank).all()
    ck.close()
    comm.Barrier()

    def check():
        files = _files(mpi_tmp, v.id)
        # per node: a BP5 directory (data.0, md.0, md.idx, mmd.0) and an index; + ranks.bin
        assert len(files) == 5 * nnodes + 1, files
        for k in range(nnodes):
            assert f"data/{v.id}/n{k}.idx.json" in files
            assert f"data/{v.id}/n{k}.bp/data.0" in files
        assert not [f for f in files if f.split("/")[2][:1] == "r" and f.split("/")[2] != "ranks.bin"
                    or ".tmp-" in f], files
        refs = rank_indexes(RepoPaths(mpi_tmp), vlcc.Repository(mpi_tmp).resolve(v.id).manifest)
        assert len({rel for _r, rel, _c in refs}) == nnodes
        assert v.id in vlcc.Repository(mpi_tmp).verify()["intact"]
    _on_root(comm, check)


@pytest.mark.mpi
def test_nm_restore_across_node_layouts_and_dedup(mpi_tmp, monkeypatch):
    """Written with nodes of 2 ranks; restored on 1 rank and on every rank
    count up to the job's with one node per rank; a second version written
    with another node layout references the first one's node files."""
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    ck, u, own = _make(mpi_tmp, comm, 0, "pairs", monkeypatch)
    v1 = ck.checkpoint(step=1)
    ck.close()
    for m in range(1, comm.size + 1):
        sub = comm.Split(0 if comm.rank < m else MPI.UNDEFINED, comm.rank)
        if sub != MPI.COMM_NULL:
            monkeypatch.setenv("VLCC_NODE_ID", str(sub.rank))
            rows = _rows(sub.rank, m)
            got = np.zeros((len(rows), GLOBAL[1]))
            c2 = vlcc.Checkpointer(mpi_tmp, sub)
            c2.register("u", got, global_shape=GLOBAL, offset=(int(rows[0]), 0))
            c2.restore(v1.id, strict=False)
            assert np.array_equal(got, _global(0)[rows[0]:rows[-1] + 1])
            c2.close()
            sub.Free()
        comm.Barrier()
    # same data, one node per rank now: everything dedups against v1's node files
    ck, u, own = _make(mpi_tmp, comm, 0, "own", monkeypatch)
    ck.restore(v1.id)
    v2 = ck.checkpoint(step=2)
    u[-1, -1] += 1           # one chunk changes
    v3 = ck.checkpoint(step=3)
    ck.restore(v2.id)
    rows = _rows(comm.rank, comm.size)
    assert np.array_equal(u, _global(0)[rows[0]:rows[-1] + 1])
    ck.close()
    comm.Barrier()

    def check():
        repo = vlcc.Repository(mpi_tmp)
        du = {d["id"]: d for d in repo.du()["versions"]}
        assert du[v2.id]["new_chunk_bytes"] == 0, du[v2.id]
        assert 0 < du[v3.id]["new_chunk_bytes"] <= 1024 * comm.size
        assert not os.path.exists(os.path.join(mpi_tmp, "data", v2.id, "n0.bp"))
        assert repo.verify()["versions"] == 3
        # v2 references v1's node files: gc after pruning v1 keeps them
        repo.prune(keep_last=2)
        repo.gc()
        assert os.path.isdir(os.path.join(mpi_tmp, "data", v1.id, "n0.bp"))
        assert sorted(repo.verify()["intact"]) == sorted([v2.id, v3.id])
        out = os.path.join(mpi_tmp, "export.npz")
        export(f"{mpi_tmp}@{v2.id}", out)
        with np.load(out) as z:
            assert np.array_equal(z["u"], _global(0))
    _on_root(comm, check)


def test_node_layout_aligns_every_rank():
    lay = node_layout([(0, [("a", 10), ("b", 4096)]), (1, []), (2, [("a", 4096)]), (3, [("c", 1)])])
    offs, pos = {}, 0
    for name, n in lay.variables:
        offs[name] = pos
        pos += n
    assert lay.start == {0: 0, 2: 8192, 3: 12288}
    assert offs[node_var(2, "a")] == 8192 and offs[node_var(0, "b")] == 10
    assert all(s % 4096 == 0 for s in lay.start.values()) and lay.nbytes % 4096 == 0


@pytest.mark.slow
def test_sigkill_mid_write_leaves_previous_versions_intact(monkeypatch):
    """Kills at random moments of a 2-rank job writing node files (one node
    of 2 ranks): every listed version restores bit-exact, nothing committed
    is lost, no partial version is listed (tests/crash_harness.py)."""
    _crash_trials(monkeypatch, {"VLCC_MODE": "sync"})


def _crash_trials(monkeypatch, env: dict) -> None:
    """6 SIGKILL trials of a 2-rank job writing node files under ``env``
    (tests/crash_harness.py); fails naming the seed and each trial."""
    import crash_harness as ct
    monkeypatch.setenv("VLCC_NODE_FILES", "1")
    for k, val in env.items():
        monkeypatch.setenv(k, val)
    seed = random.SystemRandom().randrange(2 ** 32)
    lines: list[str] = []
    results = ct.run_trials(6, seed, nranks=2, nbytes=1 << 20, jitter=0.05, max_commits=2,
                            echo=lines.append)
    line, ok = ct.summary(results)
    assert ok, "\n".join([f"seed {seed}", *lines, line])
    assert sum(r["versions"] for r in results) > 0


# Every write mode (docs/architecture.md, "Files per version in every mode"):
# (mode, extra Checkpointer keywords, environment). "stage": versions go
# through a local_dir given by the user; "store": node-local mode (the node
# stores of engine/resilience/, here persist="never": the repository gets the
# files only when a restore completes the version from the stores);
# "-funneled": the flusher calls no MPI (VLCC_FLUSH_MPI=0).
WRITE_MODES = {
    "sync": ("sync", {}, {"VLCC_LOCAL_STAGE": "0"}),
    "async-direct": ("async", {}, {"VLCC_LOCAL_STAGE": "0"}),
    "async-stage": ("async", {"local": True}, {}),
    "async-store": ("async", {"local": True, "persist": "never"}, {}),
    "async-direct-funneled": ("async", {}, {"VLCC_LOCAL_STAGE": "0", "VLCC_FLUSH_MPI": "0"}),
    "async-stage-funneled": ("async", {"local": True}, {"VLCC_FLUSH_MPI": "0"}),
    "async-store-funneled": ("async", {"local": True, "persist": "never"}, {"VLCC_FLUSH_MPI": "0"}),
}


@pytest.mark.mpi
@pytest.mark.parametrize("wmode", sorted(WRITE_MODES))
@pytest.mark.parametrize("layout", ["pairs", "one"])
def test_files_per_version_in_every_mode(mpi_tmp, monkeypatch, layout, wmode):
    """Each write mode leaves O(nodes) files per version in the repository:
    one node file (BP5 directory of 4 files) and one node index per node,
    plus ranks.bin; two versions (the second dedups against the first and
    changes one chunk) restore bit-exact, also on a new Checkpointer."""
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    mode, kw, env = WRITE_MODES[wmode]
    monkeypatch.delenv("VLCC_LOCAL_DIR", raising=False)
    for k, val in env.items():
        monkeypatch.setenv(k, val)
    kw = dict(kw)
    local = os.path.join(mpi_tmp, "local")
    if kw.pop("local", False):
        kw["local_dir"] = local
    repo = os.path.join(mpi_tmp, "repo")
    nnodes = len({LAYOUTS[layout](r) for r in range(comm.size)})
    ck, u, own = _make(repo, comm, 0, layout, monkeypatch, mode=mode, **kw)
    v1 = ck.checkpoint(step=1)
    u[0, 0] += 1
    v2 = ck.checkpoint(step=2)
    ck.wait()
    want_u, want_own = u.copy(), own.copy()
    if "stage" in wmode or "store" in wmode:   # the node-local tier holds node files too
        import glob
        # stage: the node leaders' process directories; store: the node stores
        tier = "*" if "stage" in wmode else os.path.join("node-*", "vlcc-store-*")
        held = glob.glob(os.path.join(local, tier, "data", v2.id, "*.json"))
        held = sorted(os.path.basename(f) for f in held)
        assert held == [f"n{k}.idx.json" for k in range(nnodes)], held
        assert not [f for f in held if f.startswith("r")], held
    ck.close()
    comm.Barrier()
    # a new Checkpointer restores both (completing store versions from the node stores)
    ck, u, own = _make(repo, comm, 0, layout, monkeypatch, mode=mode, **kw)
    ck.restore(v1.id)
    rows = _rows(comm.rank, comm.size)
    assert np.array_equal(u, _global(0)[rows[0]:rows[-1] + 1])
    ck.restore(v2.id)
    assert np.array_equal(u, want_u) and np.array_equal(own, want_own)
    ck.close()
    comm.Barrier()

    def check():
        extra = {"nodelocal.json", "rebuilt.json"}
        for v in (v1, v2):
            files = [f for f in _files(repo, v.id) if f.split("/")[-1] not in extra]
            stray = [f for f in files if ".tmp" in f or f.split("/")[2].startswith("r")
                     and f.split("/")[2] != "ranks.bin"]
            assert not stray, (wmode, files)
            n_idx = len([f for f in files if f.endswith(".idx.json")])
            assert n_idx == nnodes, (wmode, files)
            assert len(files) <= 5 * nnodes + 1, (wmode, files)
        assert len(_files(repo, v1.id)) >= 4 + 1 + 1
        assert sorted(vlcc.Repository(repo).verify()["intact"]) == sorted([v1.id, v2.id])
        du = {d["id"]: d for d in vlcc.Repository(repo).du()["versions"]}
        if "store" not in wmode:   # node-local only versions reference nothing
            assert 0 < du[v2.id]["new_chunk_bytes"] <= 1024 * comm.size, du[v2.id]
    _on_root(comm, check)


@pytest.mark.slow
@pytest.mark.parametrize("flush_mpi", ["1", "0"])
def test_sigkill_mid_stage_or_promote_leaves_previous_versions_intact(monkeypatch, tmp_path,
                                                                      flush_mpi):
    """Async versions staged through a local_dir as node files (one node of 2
    ranks), the flusher with and without MPI: kills at random moments (mid
    write, mid promotion, mid completion of the node file) leave every listed
    version restorable bit-exact and no partial version listed."""
    _crash_trials(monkeypatch, {"VLCC_MODE": "async", "VLCC_LOCAL_DIR": str(tmp_path / "local"),
                                "VLCC_FLUSH_MPI": flush_mpi})
