"""Branches, tags and lineage (parents), through the collective Checkpointer at
any rank count and through Repository without MPI."""

from __future__ import annotations

import os

import numpy as np
import pytest

import vlcc

pytestmark = pytest.mark.mpi


def content(k: int, rank: int) -> np.ndarray:
    return np.arange(6, dtype=np.float64) * (k + 1) + 100 * rank


class Run:
    """A tiny application: one per-rank array and a step counter."""

    def __init__(self, path, comm, **kw):
        self.rank = comm.rank
        self.a = np.zeros(6)
        self.step = {"k": -1}
        self.ck = vlcc.Checkpointer(path, comm=comm, **kw)
        self.ck.register("a", self.a)
        self.ck.register("step", vlcc.ValueProvider(get=lambda: self.step["k"],
                                                    set=lambda k: self.step.update(k=k)))

    def save(self, k: int, **kw) -> vlcc.Version:
        self.a[:] = content(k, self.rank)
        self.step["k"] = k
        return self.ck.checkpoint(step=k, **kw)

    def load(self, spec=None) -> vlcc.Version:
        self.a[:] = -1
        self.step["k"] = None
        v = self.ck.restore(spec)
        assert self.step["k"] == v.step
        assert self.a.tobytes() == content(v.step, self.rank).tobytes()
        return v


@pytest.fixture
def run(comm, mpi_tmp):
    r = Run(os.path.join(mpi_tmp, "repo"), comm)
    yield r
    r.ck.close()


def ids(vs):
    return [v.id for v in vs]


def test_branch_at_old_version(comm, run):
    v1, v2, v3 = run.save(1), run.save(2), run.save(3)
    assert (v1.parent, v2.parent, v3.parent) == (None, v1.id, v2.id)
    assert {v.branch for v in (v1, v2, v3)} == {"main"}

    b = run.ck.branch("exp", at=v2)
    assert b.id == v2.id
    assert run.ck.branch_name == "main", "branch() must not switch"
    run.ck.switch("exp")
    assert run.ck.branch_name == "exp"
    v4 = run.save(4, message="lr small", attrs={"lr": 1e-4})
    assert v4.parent == v2.id and v4.branch == "exp"
    assert v4.attrs == {"lr": 1e-4} and v4.message == "lr small" and v4.nranks == comm.size

    assert ids(run.ck.log("exp")) == [v4.id, v2.id, v1.id]
    assert ids(run.ck.log("main")) == [v3.id, v2.id, v1.id]
    assert sorted(ids(run.ck.log())) == sorted([v1.id, v2.id, v3.id, v4.id])
    assert ids(run.ck.log())[0] == v4.id, "log() is newest first"

    # The default restore follows the current branch; the other branch by name.
    assert run.load().id == v4.id
    assert run.load("branch:main").id == v3.id
    run.ck.switch("main")
    assert run.load().id == v3.id

    repo = vlcc.Repository(run.ck.path)
    assert repo.branches() == {"main": v3.id, "exp": v4.id}
    assert ids(repo.log(branch="exp")) == [v4.id, v2.id, v1.id]
    assert ids(repo.log()) == ids(run.ck.log())


def test_tags_ids_and_prefixes(run):
    v1, v2, v3 = run.save(1), run.save(2), run.save(3)
    run.ck.tag("paper-fig3", v2)
    run.ck.tag("first", v1.id)
    run.ck.tag("head")                 # default: the current parent
    assert vlcc.Repository(run.ck.path).tags() == {"paper-fig3": v2.id, "first": v1.id,
                                                   "head": v3.id}
    assert run.load("tag:paper-fig3").id == v2.id
    assert run.load("tag:first").id == v1.id
    assert run.load("tag:head").id == v3.id
    assert run.load(v1.id).id == v1.id
    assert run.load(v2).id == v2.id            # a Version object
    assert run.load("latest").id == v3.id
    assert run.load("paper-fig3").id == v2.id  # bare tag name
    assert run.load("main").id == v3.id        # bare branch name

    # Shortest unique prefix (≥ 4 digits) of v1's id resolves to v1.
    all_ids = [v1.id, v2.id, v3.id]
    k = next(k for k in range(4, 17) if sum(i.startswith(v1.id[:k]) for i in all_ids) == 1)
    assert run.load(v1.id[:k]).id == v1.id
    # A prefix shared by several versions is ambiguous, and says so.
    common = os.path.commonprefix(all_ids)
    if len(common) >= 4:   # ids start with the creation time: shared unless a 2**16 s boundary passed
        with pytest.raises(vlcc.NotFoundError, match="ambiguous"):
            run.ck.restore(common[:4])

    with pytest.raises(vlcc.RefExistsError, match="tag 'paper-fig3' already exists"):
        run.ck.tag("paper-fig3", v3)
    assert vlcc.Repository(run.ck.path).tags()["paper-fig3"] == v2.id, "tags are fixed"


def test_restore_then_checkpoint_sets_parent(run):
    v1, v2, v3 = run.save(1), run.save(2), run.save(3)
    assert run.load(v1.id).id == v1.id
    v4 = run.save(4)
    assert v4.parent == v1.id and v4.branch == "main"
    # The branch moved to the new version; the old head stays addressable.
    assert ids(run.ck.log("main")) == [v4.id, v1.id]
    repo = vlcc.Repository(run.ck.path)
    assert repo.branches()["main"] == v4.id
    assert repo.resolve(v3.id).id == v3.id
    assert run.load(v3.id).id == v3.id


def test_switch_create_and_reopen(comm, mpi_tmp):
    path = os.path.join(mpi_tmp, "repo")
    r = Run(path, comm)
    v1 = r.save(1)
    with pytest.raises(vlcc.NotFoundError, match="unknown branch 'new'"):
        r.ck.switch("new")
    assert r.ck.branch_name == "main"
    r.ck.switch("new", create=True)
    v2 = r.save(2)
    assert (v2.parent, v2.branch) == (v1.id, "new")
    r.ck.close()

    # Re-opening on a branch continues its lineage; on a fresh branch name the
    # first version has no parent.
    r2 = Run(path, comm, branch="new")
    assert r2.load().id == v2.id
    v3 = r2.save(3)
    assert v3.parent == v2.id
    r2.ck.close()
    r3 = Run(path, comm, branch="other")
    v4 = r3.save(4)
    assert (v4.parent, v4.branch) == (None, "other")
    with pytest.raises(vlcc.RefExistsError, match="branch 'new' already exists"):
        r3.ck.branch("new", at=v1)
    with pytest.raises(vlcc.NotFoundError):
        r3.ck.branch("x", at="tag:nope")
    r3.ck.close()
    repo = vlcc.Repository(path)
    assert repo.branches() == {"main": v1.id, "new": v3.id, "other": v4.id}
    assert ids(repo.log("new")) == [v3.id, v2.id, v1.id]
    assert ids(repo.log("other")) == [v4.id]


def test_branch_of_branch_and_nested_names(run):
    v1 = run.save(1)
    run.ck.branch("exp/lr-1e-3", at=v1)
    run.ck.switch("exp/lr-1e-3")
    v2 = run.save(2)
    run.ck.branch("exp/lr-1e-4", at=None)          # default: the current parent (v2)
    run.ck.switch("exp/lr-1e-4")
    v3 = run.save(3)
    assert (v3.parent, v3.branch) == (v2.id, "exp/lr-1e-4")
    assert ids(run.ck.log("exp/lr-1e-4")) == [v3.id, v2.id, v1.id]
    assert run.load("branch:exp/lr-1e-3").id == v2.id
    assert set(vlcc.Repository(run.ck.path).branches()) == {"main", "exp/lr-1e-3", "exp/lr-1e-4"}
    # Ref names are paths, as in git: a name cannot also be the prefix of another.
    with pytest.raises(vlcc.RefExistsError, match="'exp/lr-1e-3/warm' clashes with existing branch 'exp/lr-1e-3'"):
        run.ck.branch("exp/lr-1e-3/warm", at=v1)
    with pytest.raises(vlcc.RefExistsError, match="'exp' clashes with existing branch 'exp/lr-1e-3'"):
        run.ck.branch("exp", at=v1)
    with pytest.raises(vlcc.RefExistsError, match="clashes"):
        run.ck.switch("main/sub", create=True)
    with pytest.raises(vlcc.NotFoundError, match="unknown branch 'exp'"):
        run.ck.switch("exp")
    assert run.ck.branch_name == "exp/lr-1e-4"
    for bad in ("../x", "a b", "", "x.lock", "/abs"):
        with pytest.raises(vlcc.VlccError, match="invalid branch name"):
            run.ck.branch(bad, at=v1)
    # The last restore (of v2) set the parent; the failed ref operations did not change it.
    v4 = run.save(4)
    assert (v4.parent, v4.branch) == (v2.id, "exp/lr-1e-4")


def test_lineage_records_run_info(comm, run, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "7")
    v = run.save(1, attrs={"dt": 0.5})
    assert v.slurm == {"job_id": "4242", "array_task_id": "7"}
    assert v.nranks == comm.size and v.hosts and v.time > 0
    assert v.run["vlcc"] == vlcc.__version__
    assert vlcc.Repository(run.ck.path).resolve(v.id) == v


@pytest.mark.parametrize("flush_mpi", ["auto", "0"])
def test_switch_while_an_async_version_is_in_flight(comm, mpi_tmp, monkeypatch, flush_mpi):
    """switch() does not wait for pending versions, and the branch's ref on disk
    does not name them yet: main → side → main while main's v1 is still being
    written must continue main from v1 (not from the older head on disk, which
    made v1 drop off main's lineage), and side must start at v1. With the
    flusher committing (auto), rank 0 holds main's ref lock so v1 stays in
    flight through both switches; if_moved="fail": nothing may look moved."""
    monkeypatch.setenv("VLCC_FLUSH_MPI", flush_mpi)
    from vlcc.repo import refs
    from vlcc.repo.paths import RepoPaths
    path = os.path.join(mpi_tmp, "r")
    u = np.full(64, comm.rank, dtype=np.float64)
    hold = flush_mpi == "auto" and comm.rank == 0
    with vlcc.Checkpointer(path, comm=comm, mode="async", if_moved="fail") as ck:
        ck.register("u", u)
        v0 = ck.checkpoint(step=0).id
        ck.wait()
        lock = refs.ref_lock(RepoPaths(path), "branch", "main") if hold else None
        if lock is not None:
            lock.__enter__()
        try:
            v1 = ck.checkpoint(step=1).id
            ck.switch("side", create=True)
            v2 = ck.checkpoint(step=2).id
            ck.switch("main")
            if hold:
                assert refs.read_ref(RepoPaths(path), "branch", "main") == v0   # v1 in flight
            assert ck.parent == v1
            v3 = ck.checkpoint(step=3).id
        finally:
            if lock is not None:
                lock.__exit__(None, None, None)
        ck.wait()
    comm.Barrier()
    repo = vlcc.Repository(path)
    assert [v.id for v in repo.log("main")] == [v3, v1, v0]
    assert [v.id for v in repo.log("side")] == [v2, v1, v0]
    assert all(v.manifest.get("rebased_from") is None for v in repo.log("main"))
