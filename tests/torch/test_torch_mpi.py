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
