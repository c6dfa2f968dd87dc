"""vlcc.adjoint: checkpoint schedules executed on vlcc's tiers, on any rank count.

Every test is an MPI test (``pytest --with-mpi`` serially, and under mpiexec -n 2 / -n 3):
each rank runs the same schedule on its own block of a distributed array. The problem is
nonlinear and step-dependent (u <- u + 0.1 sin u + 0.001 n), so a wrong restore or a wrong
recomputation changes the gradient; gradients are compared bit for bit with a store-all
run. Arrays are tiny: the tests check counts, order, bytes and cleanliness, not speed."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

import vlcc
from vlcc.adjoint import Adjoint, AdjointArgumentError
from conftest import TESTS_DIR

cs = pytest.importorskip("checkpoint_schedules")   # installed by make setup (extra "adjoint")
optimal = cs.optimal_steps_binomial

ROOT = Path(TESTS_DIR).parent
NL = 6       # points per rank


class Toy:
    """u <- u + 0.1 sin(u) + 0.001 n on this rank's block; lambda <- lambda (1 + 0.1 cos u)."""

    def __init__(self, comm, n_steps):
        self.comm, self.n_steps = comm, n_steps
        self.u = np.zeros(NL)
        self.lam = np.zeros(NL)
        self.calls: list[int] = []
        self.seen: list[int] = []
        self.fail_at = None          # (rank, "forward"|"reverse", step)

    def init(self):
        self.u[:] = np.linspace(0.1, 1.0, NL) + self.comm.rank
        self.lam[:] = 0

    def _maybe_fail(self, kind, n):
        if self.fail_at == (self.comm.rank, kind, n):
            raise ValueError(f"{kind}({n}) failed on purpose")

    def forward(self, n):
        if self.n_steps is None and n >= self.online_end:
            return False
        self._maybe_fail("forward", n)
        self.calls.append(n)
        self.u += 0.1 * np.sin(self.u) + 0.001 * n

    def reverse(self, n):
        self._maybe_fail("reverse", n)
        self.seen.append(n)
        self.lam *= 1 + 0.1 * np.cos(self.u)

    def reference(self, n_steps):
        self.init()
        hist = []
        for n in range(n_steps):
            hist.append(self.u.copy())
            self.u += 0.1 * np.sin(self.u) + 0.001 * n
        lam = self.u.copy()
        for n in range(n_steps - 1, -1, -1):
            lam *= 1 + 0.1 * np.cos(hist[n])
        return lam


def register(ck, toy):
    r = ck.comm.rank
    ck.register("toy/u", toy.u, global_shape=(NL * ck.comm.size,), offset=(NL * r,))


def adjoint_run(ck, toy, n_steps, schedule, ram, disk=0, online_end=None, **opts):
    toy.online_end = online_end
    toy.init()
    ad = Adjoint(ck, toy.forward, toy.reverse, n_steps, schedule=schedule, ram=ram, disk=disk,
                 **opts)
    ad.run_forward()
    toy.lam[:] = toy.u          # J = |u_N|^2 / 2
    ad.run_reverse()
    return ad


def assert_clean(path):
    """No version, no branch, no data left by the adjoint run."""
    repo = vlcc.Repository(path)
    assert repo.log() == []
    assert repo.branches() == {}
    data = os.path.join(path, "data")
    assert not os.path.isdir(data) or os.listdir(data) == []


@pytest.mark.mpi
@pytest.mark.parametrize("n,s", [(1, 1), (2, 1), (5, 2), (10, 3), (25, 3), (60, 4), (100, 5)])
def test_revolve_takes_the_binomial_optimum_and_writes_nothing(comm, mpi_tmp, n, s):
    toy = Toy(comm, n)
    ref = toy.reference(n)
    with vlcc.Checkpointer(mpi_tmp, comm=comm) as ck:
        register(ck, toy)
        ad = adjoint_run(ck, toy, n, "revolve", ram=s)
        st = ad.stats
    assert np.array_equal(toy.lam, ref)
    assert toy.seen == list(range(n - 1, -1, -1))
    # The schedule's own count (checkpoint_schedules' and pyrevolve's convention, where each
    # adjoint step re-runs its forward step) is the binomial optimum ...
    assert st["schedule_forward_steps"] == optimal(n, s)
    # ... and forward() runs n - 1 times less: reverse(n) uses u_n as restored/recomputed.
    assert st["forward_steps"] == len(toy.calls) == optimal(n, s) - n + 1
    assert st["skipped_steps"] == n - 1
    assert st["reverse_steps"] == n
    assert st["ram_peak"] <= s
    assert st["stores"]["disk"] == st["restores"]["disk"] == 0
    if comm.rank == 0:
        assert_clean(mpi_tmp)      # a RAM-only schedule writes nothing to disk


@pytest.mark.mpi
@pytest.mark.parametrize("prefetch", [True, False])
def test_multistage_optimum_with_disk_snapshots_and_exact_prefetch(comm, mpi_tmp, prefetch):
    n, ram, disk = 20, 2, 3
    toy = Toy(comm, n)
    ref = toy.reference(n)
    with vlcc.Checkpointer(mpi_tmp, comm=comm) as ck:
        register(ck, toy)
        ad = adjoint_run(ck, toy, n, "multistage", ram=ram, disk=disk, prefetch=prefetch)
        st = ad.stats
    assert np.array_equal(toy.lam, ref)
    assert toy.seen == list(range(n - 1, -1, -1))
    assert st["schedule_forward_steps"] == optimal(n, ram + disk)
    assert st["forward_steps"] == optimal(n, ram + disk) - n + 1
    assert st["ram_peak"] <= ram and 1 <= st["disk_peak"] <= disk
    assert st["stores"]["disk"] >= 1 and st["restores"]["disk"] >= 1
    assert st["prefetch_hits"] + st["prefetch_misses"] == st["restores"]["disk"]
    if prefetch:
        # The exact restore order was declared: every disk snapshot is in memory in time.
        assert st["prefetch_misses"] == 0
    else:
        assert st["prefetch_hits"] == 0
    if comm.rank == 0:
        assert_clean(mpi_tmp)


SCHEDULES = [("revolve", 3, 0, "sync"), ("multistage", 2, 2, "async"),
             ("hrevolve", 2, 2, "sync"), ("hrevolve", 2, 2, "async"),
             ("twolevel", 2, 4, "sync"), ("twolevel", 2, 4, "async"),
             ("online", 3, 0, "sync"), ("mixed-object", 1, 4, "async")]


@pytest.mark.mpi
@pytest.mark.parametrize("schedule,ram,disk,mode", SCHEDULES)
def test_every_schedule_gives_the_store_all_gradient_bitexact(comm, mpi_tmp, schedule, ram,
                                                             disk, mode):
    n = 16
    toy = Toy(comm, n)
    ref = toy.reference(n)
    steps = n
    if schedule == "mixed-object":       # any checkpoint_schedules schedule object works
        schedule = cs.MixedCheckpointSchedule(n, disk)
    elif schedule == "online":
        steps = toy.n_steps = None       # forward() says when the run ends
    with vlcc.Checkpointer(mpi_tmp, comm=comm, mode=mode) as ck:
        register(ck, toy)
        ad = adjoint_run(ck, toy, steps, schedule, ram=ram, disk=disk, online_end=n)
        st = ad.stats
    assert np.array_equal(toy.lam.view(np.uint64), ref.view(np.uint64))
    assert toy.seen == list(range(n - 1, -1, -1))
    assert st["forward_steps"] == len(toy.calls) and st["n_steps"] == n
    assert st["ram_peak"] <= ram
    if disk:
        assert st["stores"]["disk"] >= 1
    if comm.rank == 0:
        assert_clean(mpi_tmp)


@pytest.mark.mpi
def test_online_revolve_against_the_offline_optimum(comm, mpi_tmp):
    n, s = 40, 4
    toy = Toy(comm, None)
    ref = toy.reference(n)
    with vlcc.Checkpointer(mpi_tmp, comm=comm) as ck:
        register(ck, toy)
        st = adjoint_run(ck, toy, None, "online", ram=s, online_end=n).stats
    assert np.array_equal(toy.lam, ref)
    assert st["n_steps"] == n and st["reverse_steps"] == n
    assert st["ram_peak"] <= s
    offline = optimal(n, s) - n + 1
    # Not knowing n costs recomputations, but stays within a small factor of the optimum.
    assert offline <= st["forward_steps"] <= 2 * offline


@pytest.mark.mpi
def test_keep_leaves_snapshots_on_a_branch_and_the_app_lineage_is_untouched(comm, mpi_tmp):
    n = 12
    toy = Toy(comm, n)
    ref = toy.reference(n)
    with vlcc.Checkpointer(mpi_tmp, comm=comm) as ck:
        register(ck, toy)
        toy.init()
        app = ck.checkpoint(step=0, message="the application's own version")
        ad = adjoint_run(ck, toy, n, "multistage", ram=1, disk=3, keep=True)
        assert ck.branch_name == "main" and ck.parent == app.id
        after = ck.checkpoint(step=1)
        assert after.parent == app.id
    assert np.array_equal(toy.lam, ref)
    if comm.rank == 0:
        repo = vlcc.Repository(mpi_tmp)
        branch = ad.stats["branch"]
        assert branch.startswith("adjoint/") and branch in repo.branches()
        kept = repo.log(branch)
        adj = [v for v in kept if v.attrs.get("adjoint") == branch]
        assert len(adj) == ad.stats["stores"]["disk"] >= 1
        repo.verify()
        assert [v.id for v in repo.log("main")] == [after.id, app.id]


@pytest.mark.mpi
def test_burgers_gradient_matches_finite_differences(comm, mpi_tmp):
    spec = importlib.util.spec_from_file_location("burgers", ROOT / "examples/adjoint/burgers.py")
    burgers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(burgers)
    prob = burgers.Burgers(comm, n=48)
    steps = 30
    with vlcc.Checkpointer(mpi_tmp, comm=comm) as ck:
        grad, st = burgers.gradient(ck, prob, steps, "revolve", ram=4)
    fd, ad = burgers.fd_check(prob, steps, grad)
    assert abs(fd - ad) <= 1e-6 * abs(fd)
    assert st["forward_steps"] == optimal(steps, 4) - steps + 1


# -- bad input ---------------------------------------------------------------------------

@pytest.mark.mpi
@pytest.mark.parametrize("kw,what", [
    (dict(n_steps=0), "n_steps"), (dict(n_steps=-3), "n_steps"), (dict(n_steps=2.5), "n_steps"),
    (dict(ram=0), "ram"), (dict(ram=None), "ram"), (dict(disk=-1), "disk"),
    (dict(schedule="hrevolve", disk=0), "disk"), (dict(schedule="revolve", disk=2), "disk"),
    (dict(schedule="twolevel", disk=0), "disk"), (dict(schedule="online", n_steps=None, disk=1), "disk"),
    (dict(schedule="nope"), "unknown schedule"), (dict(schedule="revolve", n_steps=None), "n_steps"),
])
def test_bad_arguments_are_clear_errors(comm, mpi_tmp, kw, what):
    toy = Toy(comm, 5)
    args = dict(n_steps=5, schedule="revolve", ram=2, disk=0) | kw
    with vlcc.Checkpointer(mpi_tmp, comm=comm) as ck:
        register(ck, toy)
        with pytest.raises(AdjointArgumentError, match=what):
            Adjoint(ck, toy.forward, toy.reverse, args.pop("n_steps"), **args)
        with pytest.raises(ValueError):       # also a ValueError
            Adjoint(ck, toy.forward, toy.reverse, 5, schedule="revolve", ram=0)
    if comm.rank == 0:
        assert_clean(mpi_tmp)


@pytest.mark.mpi
def test_disk_schedule_object_without_disk_tier_is_refused(comm, mpi_tmp):
    toy = Toy(comm, 10)
    with vlcc.Checkpointer(mpi_tmp, comm=comm) as ck:
        register(ck, toy)
        with pytest.raises(AdjointArgumentError, match="disk=0"):
            Adjoint(ck, toy.forward, toy.reverse, 10,
                    schedule=cs.MultistageCheckpointSchedule(10, 1, 2), ram=1, disk=0)


@pytest.mark.mpi
@pytest.mark.parametrize("kind,step", [("forward", 7), ("reverse", 3)])
def test_a_step_failing_on_one_rank_fails_every_rank_and_leaves_the_repo_clean(
        comm, mpi_tmp, kind, step):
    n = 12
    toy = Toy(comm, n)
    toy.fail_at = (comm.size - 1, kind, step)
    with vlcc.Checkpointer(mpi_tmp, comm=comm) as ck:
        register(ck, toy)
        toy.init()
        app = ck.checkpoint(step=0)
        # multistage: disk snapshots (versions) exist when the failure happens
        if comm.rank == comm.size - 1:
            with pytest.raises(ValueError, match="failed on purpose"):
                adjoint_run(ck, toy, n, "multistage", ram=1, disk=3)
        else:
            with pytest.raises(vlcc.CollectiveError, match=f"rank {comm.size - 1}"):
                adjoint_run(ck, toy, n, "multistage", ram=1, disk=3)
        # The Checkpointer still works, on the application's branch and lineage.
        assert ck.branch_name == "main" and ck.parent == app.id
        nxt = ck.checkpoint(step=1)
    if comm.rank == 0:
        repo = vlcc.Repository(mpi_tmp)
        assert [v.id for v in repo.log()] == [nxt.id, app.id]
        assert list(repo.branches()) == ["main"]
        assert sorted(os.listdir(os.path.join(mpi_tmp, "data"))) == sorted([app.id, nxt.id])


@pytest.mark.mpi
def test_run_reverse_before_run_forward_is_refused(comm, mpi_tmp):
    toy = Toy(comm, 4)
    with vlcc.Checkpointer(mpi_tmp, comm=comm) as ck:
        register(ck, toy)
        ad = Adjoint(ck, toy.forward, toy.reverse, 4, ram=2)
        with pytest.raises(vlcc.adjoint.AdjointError, match="run_forward"):
            ad.run_reverse()
        ad.run_forward()
        with pytest.raises(vlcc.adjoint.AdjointError, match="run_forward"):
            ad.run_forward()
        ad.run_reverse()
