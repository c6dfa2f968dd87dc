"""Two threads of a rank in collectives at once (async mode: the application's
thread and the flusher): vlcc's reductions are MPI's own, and vlcc makes no
communicator on its background threads (docs/architecture.md,
"Communicators"). Before, mpi4py's pickled allreduce duplicated the flusher's
communicator on the flusher thread at its first call, and an async job hung
about once in 200 checkpoint/restore cycles at 3 ranks."""

from __future__ import annotations

import os

import numpy as np
import pytest

import vlcc
from mpi_helpers import COMM_KINDS, communicator
from vlcc.comm import protocol

pytestmark = pytest.mark.mpi


@pytest.fixture(params=COMM_KINDS)
def comm(request):
    with communicator(request.param) as c:
        yield c


class _Spy:
    """An mpi4py communicator whose method lookups are recorded."""

    def __init__(self, comm):
        self.inner, self.used = comm, []

    def __getattr__(self, name):
        self.used.append(name)
        return getattr(self.inner, name)


@pytest.mark.parametrize("call", ["all_true", "any_bits", "max_int"])
def test_reductions_are_mpi_allreduce_not_pickled(comm, call):
    """mpi4py's lowercase ``allreduce`` makes a hidden MPI_Comm_dup at its
    first call on a communicator: vlcc's reductions never use it."""
    spy = _Spy(comm)
    {"all_true": lambda: protocol.all_true(spy, lambda: True),
     "any_bits": lambda: protocol.any_bits(spy, 1 << comm.rank),
     "max_int": lambda: protocol.max_int(spy, comm.rank)}[call]()
    assert "Allreduce" in spy.used and "allreduce" not in spy.used, spy.used


def test_any_bits_wider_than_a_word(comm):
    """Bit sets of any width (one bit per leaf: a version may have thousands)."""
    n = comm.size
    assert protocol.any_bits(comm, 1 << (100 * comm.rank + 7)) == sum(
        1 << (100 * r + 7) for r in range(n))
    # only one rank's set is wide: the others still take part in the second round
    wide = 1 << 1000 if comm.rank == n - 1 else 0
    assert protocol.any_bits(comm, wide | (1 << comm.rank)) == (1 << 1000) | ((1 << n) - 1)
    assert protocol.any_bits(comm, (1 << 63) if comm.rank == 0 else 1) == (1 << 63) | (n > 1)


def test_reduction_operands_out_of_range_fail_everywhere(comm):
    last = comm.rank == comm.size - 1
    with pytest.raises((ValueError, vlcc.VlccError), match="non-negative"):
        protocol.any_bits(comm, -1 if last else 0)
    with pytest.raises((ValueError, vlcc.VlccError), match="64 bits"):
        protocol.max_int(comm, (1 << 70) if last else 0)
    assert protocol.max_int(comm, -(1 << 62) + comm.rank) == -(1 << 62) + comm.size - 1
    assert protocol.all_true(comm, lambda: not last) is False


@pytest.mark.parametrize("kw", [{}, {"local_dir": True}, {"local_dir": True, "persist": "never"}],
                         ids=["async", "async-local", "async-node-local"])
def test_async_cycles_make_no_communicator_off_thread(mpi_tmp, kw):
    """Checkpoints flushed by the flusher's collectives while the application's
    thread restores: every communicator is made on the application's thread,
    and the cycles complete (a hang fails through the suite's timeout)."""
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    kw = dict(kw)
    before = list(protocol.OFF_THREAD)
    u = np.arange(64.0) + comm.rank
    for i in range(8):
        path = os.path.join(mpi_tmp, f"r{i}")
        if kw.get("local_dir"):
            kw["local_dir"] = path + "-local"
        with vlcc.Checkpointer(path, comm, mode="async", memory_budget="64MiB", **kw) as ck:
            ck.register("u", u)
            v0 = ck.checkpoint(step=0)
            u += 1
            ck.checkpoint(step=1)
            ck.restore()                  # pending: the flusher may be in its collectives
            assert np.array_equal(u, np.arange(64.0) + comm.rank + 1)
            ck.restore(v0)
            assert np.array_equal(u, np.arange(64.0) + comm.rank)
            ck.checkpoint(step=2)
    assert protocol.OFF_THREAD == before, protocol.OFF_THREAD[len(before):]
