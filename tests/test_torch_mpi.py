"""vlcc.torch.Checkpointer under mpiexec (collectives through mpi4py): any rank count."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")

import vlcc  # noqa: E402
import vlcc.torch as vt  # noqa: E402
from torch_helpers import make, same_tensors, train_step  # noqa: E402


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
