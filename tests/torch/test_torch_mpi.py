"""vlcc.torch.Checkpointer under mpiexec (collectives through mpi4py): any rank count."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")

import vlcc  # noqa: E402
import vlcc.torch as vt  # noqa: E402
from torch_helpers import frozen_finetune, hold_flushes, index_bytes, make, same_tensors, train_step  # noqa: E402


@pytest.mark.mpi
def test_checkpointer_over_mpi4py(comm, mpi_tmp):
    model, opt, sched = make(width=32)       # same seed on every rank: replicas
    train_step(model, opt, sched)
    extra = {"rank_count": comm.size}
    with vt.Checkpointer(mpi_tmp, model, opt, sched, extra=extra, group=comm) as ck:
        assert ck.size == comm.size
        v = ck.save(1, "mpi")
        saved = copy.deepcopy(model.state_dict())
        ref = [train_step(model, opt, sched) for _ in range(3)]
        ck.wait()
        ck.load(v.id)
        assert same_tensors(model.state_dict(), saved)
        assert [train_step(model, opt, sched) for _ in range(3)] == ref
        log = ck.log()
    assert [x.id for x in log] == [v.id] and log[0].nranks == comm.size
    if comm.rank == 0:
        assert vlcc.Repository(mpi_tmp).resolve(v.id).providers["model/0.weight"]["replicated"]


@pytest.mark.mpi
@pytest.mark.parametrize("flush_mpi", ["auto", "0"])
def test_frozen_layers_dedup_while_parent_in_flight_mpi(comm, mpi_tmp, monkeypatch, flush_mpi):
    """Async and sync store the same bytes for a frozen fine-tune on any rank
    count, also when a version is captured while its parent is in flight."""
    import os
    monkeypatch.setenv("VLCC_FLUSH_MPI", flush_mpi)
    frozen, sync = frozen_finetune(os.path.join(mpi_tmp, "sync"), "sync", group=comm)
    gate = hold_flushes(monkeypatch)
    _, asyn = frozen_finetune(os.path.join(mpi_tmp, "async"), "async", group=comm, gate=gate)
    if comm.rank == 0:
        assert sync["reused_bytes"] >= comm.size * frozen, (sync, asyn)
        assert asyn["reused_bytes"] == sync["reused_bytes"], (sync, asyn)
        assert asyn["new_chunk_bytes"] == sync["new_chunk_bytes"] < frozen / 4, (sync, asyn)
        index = index_bytes(sync["path"])
        assert abs(asyn["stored_bytes"] - sync["stored_bytes"]) <= index, (sync, asyn)


@pytest.mark.mpi
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_replicated_tensors_are_captured_once(comm, mpi_tmp, mode):
    """replicated=True: each tensor is stored once, in its real shape, as a
    distributed array written by one rank (the ranks' shares balanced); the
    version loads back bit-exact on the same ranks and on one process."""
    from mpi4py import MPI
    model, opt, sched = make(width=64)       # same seed on every rank: replicas
    train_step(model, opt, sched)
    with vt.Checkpointer(mpi_tmp, model, opt, sched, mode=mode, group=comm, replicated=True) as ck:
        assert ck.replicated
        v = ck.save(1)
        saved = copy.deepcopy(model.state_dict())
        saved_opt = copy.deepcopy(opt.state_dict()["state"])
        ref = [train_step(model, opt, sched) for _ in range(3)]
        v2 = ck.save(4)                      # steady state: no re-check, same plan
        ck.load(v.id)
        assert same_tensors(model.state_dict(), saved)
        assert [train_step(model, opt, sched) for _ in range(3)] == ref
    repo = vlcc.Repository(mpi_tmp)
    for vid in (v.id, v2.id):
        provs = repo.resolve(vid).providers
        split = {n: e for n, e in provs.items() if n.startswith(("model/", "optim/state/"))
                 and e["kind"] == "distributed"}
        # every tensor of rank >= 1 dimension (not Adam's 0-d step) is split
        # over 2+ ranks; one rank has nothing to split
        want = sorted(n for n in provs if n.startswith(("model/", "optim/state/"))
                      and not n.endswith("/step")) if comm.size > 1 else []
        assert sorted(split) == want, sorted(provs)
    if comm.rank == 0:
        got = repo.read(v.id, "model/0.weight")
        assert got.shape == tuple(saved["0.weight"].shape)
        assert (got == saved["0.weight"].numpy()).all()
        # N -> 1: one process (its own communicator) loads the N-rank version
        m1, o1, s1 = make(width=64, seed=5)
        with vt.Checkpointer(mpi_tmp, m1, o1, s1, group=MPI.COMM_SELF, replicated=True) as c1:
            c1.load(v.id)
        assert same_tensors(m1.state_dict(), saved)
        st = o1.state_dict()["state"]
        assert all(torch.equal(st[i][k], saved_opt[i][k]) for i in saved_opt for k in saved_opt[i])
    comm.Barrier()


@pytest.mark.mpi
def test_replicated_shares_are_balanced(comm, mpi_tmp, monkeypatch):
    """Each rank writes about 1/N of the replicated state (one file per rank
    here, VLCC_NODE_FILES=0), not rank 0 all of it."""
    from torch_helpers import rank_bytes, version_bytes
    monkeypatch.setenv("VLCC_NODE_FILES", "0")
    model, opt, sched = make(width=256)
    train_step(model, opt, sched)
    with vt.Checkpointer(mpi_tmp, model, opt, sched, mode="sync", group=comm, replicated=True) as ck:
        v = ck.save(1)
    per_rank = [rank_bytes(mpi_tmp, v.id, r) for r in range(comm.size)]
    total = version_bytes(mpi_tmp, v.id)
    largest = max(t.numel() * t.element_size() for t in model.state_dict().values())
    assert sum(per_rank) <= total
    assert max(per_rank) <= total / comm.size + largest + (64 << 10), (per_rank, total)


@pytest.mark.mpi
def test_replicated_refuses_replicas_that_differ(comm, mpi_tmp):
    """A tensor that differs between ranks fails the save on every rank,
    naming it, and nothing is committed; replicated=False stores each
    rank's own as before."""
    model, opt, _ = make(width=16)
    train_step(model, opt)
    if comm.size > 1 and comm.rank == comm.size - 1:
        with torch.no_grad():
            model[2].bias.add_(1.0)
    with vt.Checkpointer(mpi_tmp, model, opt, group=comm, replicated=True) as ck:
        if comm.size == 1:
            ck.save(1)          # one rank: nothing to split, nothing to compare
            return
        with pytest.raises(vlcc.ProviderError, match=r"'model/2\.bias' differs between rank 0 and rank"):
            ck.save(1)
        assert ck.log() == []
    with vt.Checkpointer(mpi_tmp, model, opt, group=comm, replicated=False) as ck:
        v = ck.save(1)
    assert not vlcc.Repository(mpi_tmp).resolve(v.id).providers["model/2.bias"]["replicated"]
