"""Checkpointer(compare_to=...) at any rank count: the reference run is written
on one rank (COMM_SELF of rank 0), the compared run on all ranks."""

from __future__ import annotations

import os

import numpy as np
import pytest

import vlcc
from mpi_helpers import on_root

NY, NX = 9, 4


def _field(step):
    return np.arange(NY * NX, dtype=float).reshape(NY, NX) * step


def _run(ck, rows, u, perturb_at=None, steps=(1, 2, 3)):
    vs = []
    for step in steps:
        u[:] = _field(step)[rows]
        if perturb_at and step >= perturb_at and NY - 2 in rows:
            u[NY - 2 - rows[0], 3] += 0.5
        vs.append(ck.checkpoint(step=step))
    return vs


@pytest.mark.mpi
def test_compare_to_finds_first_divergent_step(comm, mpi_tmp):
    from mpi4py import MPI
    ref = os.path.join(mpi_tmp, "ref")
    if comm.rank == 0:
        u = _field(0)
        with vlcc.Checkpointer(ref, comm=MPI.COMM_SELF) as ck:
            ck.register("u", u, global_shape=(NY, NX), offset=(0, 0))
            _run(ck, slice(None), u)
    comm.Barrier()
    rows = np.array_split(np.arange(NY), comm.size)[comm.rank]
    u = np.zeros((len(rows), NX))
    with vlcc.Checkpointer(os.path.join(mpi_tmp, "run"), comm=comm, compare_to=f"{ref}@main",
                           atol=1e-9) as ck:
        ck.register("u", u, global_shape=(NY, NX), offset=(rows[0] if len(rows) else 0, 0))
        vs = _run(ck, rows, u, perturb_at=2)
        d = ck.divergence
    assert d is not None and d["step"] == 2 and d["provider"] == "u"
    assert d["index"] == [NY - 2, 3] and d["size"] == pytest.approx(0.5) and d["differing"] == 1
    assert "divergence" not in vs[0].attrs and vs[0].attrs["compared_to"].startswith(ref)
    assert vs[1].attrs["divergence"]["index"] == [NY - 2, 3]
    on_root(comm, lambda: _check_stored(os.path.join(mpi_tmp, "run")))

    # on_diverge="raise": every rank raises once the divergent version is committed.
    u2 = np.zeros((len(rows), NX))
    path = os.path.join(mpi_tmp, "raise")
    with vlcc.Checkpointer(path, comm=comm, compare_to=ref, on_diverge="raise") as ck:
        ck.register("u", u2, global_shape=(NY, NX), offset=(rows[0] if len(rows) else 0, 0))
        with pytest.raises(vlcc.DivergenceError, match="step 2: provider 'u'") as ei:
            _run(ck, rows, u2, perturb_at=2)
        assert ei.value.record["index"] == [NY - 2, 3]
        steps = [v.step for v in ck.log(branch="main")]
    assert steps == [2, 1]


def _check_stored(path):
    v = vlcc.Repository(path).log(branch="main")[1]
    assert v.step == 2 and v.attrs["divergence"]["provider"] == "u"


@pytest.mark.mpi
def test_compare_to_bad_reference(comm, mpi_tmp):
    with pytest.raises(vlcc.RepositoryError):
        vlcc.Checkpointer(os.path.join(mpi_tmp, "x"), comm=comm,
                          compare_to=os.path.join(mpi_tmp, "nothing"))
    with pytest.raises(vlcc.VlccError, match="on_diverge"):
        vlcc.Checkpointer(os.path.join(mpi_tmp, "y"), comm=comm, compare_to=mpi_tmp,
                          on_diverge="explode")
