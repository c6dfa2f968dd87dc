"""Every collective of vlcc goes through comm/protocol.py: an error on one
rank is raised on every rank, at every call site, and nobody hangs. Each body
runs on COMM_WORLD, a split sub-communicator and a Dup (mpi4py's practice)."""

from __future__ import annotations

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


def _fail_on_last(comm, exc=vlcc.ProviderError):
    def fn():
        if comm.rank == comm.size - 1:
            raise exc("boom on the last rank")
        return comm.rank
    return fn


@pytest.mark.parametrize("call", ["gather_decide", "agree", "allgather", "all_true", "root_only"])
def test_protocol_call_fails_everywhere(comm, call):
    fn = _fail_on_last(comm, vlcc.StorageError)
    calls = {
        "gather_decide": lambda: protocol.gather_decide(comm, fn, lambda xs: xs),
        "agree": lambda: protocol.agree(comm, fn),
        "allgather": lambda: protocol.allgather(comm, fn),
        "all_true": lambda: protocol.all_true(comm, lambda: fn() is not None),
        "root_only": lambda: protocol.root_only(comm, lambda: (_ for _ in ()).throw(
            vlcc.StorageError("boom on rank 0"))),
    }
    with pytest.raises(vlcc.StorageError, match="boom"):
        calls[call]()
    # and the communicator is still usable by everyone afterwards
    assert protocol.allgather(comm, lambda: comm.rank) == list(range(comm.size))


def test_failing_rank_is_named_once(comm):
    """A rank whose message already names it ("rank 2: ...", as the write path
    says) is not named twice on the other ranks."""
    last = comm.size - 1

    def fn():
        if comm.rank == last:
            raise vlcc.StorageError(f"rank {last}: disk full")
        return 0
    with pytest.raises(vlcc.StorageError) as info:
        protocol.gather_decide(comm, fn, lambda xs: xs)
    assert str(info.value) == f"rank {last}: disk full"


def test_keyboard_interrupt_on_one_rank_does_not_hang(comm):
    def fn():
        if comm.rank == comm.size - 1:
            raise KeyboardInterrupt
        return 1
    if comm.rank == comm.size - 1:
        with pytest.raises(KeyboardInterrupt):
            protocol.agree(comm, fn)
    else:
        with pytest.raises(vlcc.CollectiveError, match="KeyboardInterrupt"):
            protocol.agree(comm, fn)


def test_any_bits_is_a_collective_or(comm):
    assert protocol.any_bits(comm, 1 << comm.rank) == (1 << comm.size) - 1


def test_checkpointer_call_sites_fail_on_all_ranks(comm, mpi_tmp):
    import os
    from mpi4py import MPI
    # one repository per sub-communicator (split: one per color)
    path = os.path.join(mpi_tmp, f"r-{MPI.COMM_WORLD.rank if comm.rank == 0 else 0}")
    path = comm.bcast(path, root=0)
    last = comm.rank == comm.size - 1
    state = {"fail_get": False, "fail_set": False}

    def get():
        if state["fail_get"] and last:
            raise RuntimeError("capture failed")
        return 7

    def put(v):
        if state["fail_set"] and last:
            raise RuntimeError("restore failed")

    u = np.arange(4.0) + comm.rank
    with vlcc.Checkpointer(path, comm) as ck:
        ck.register("u", u)
        ck.register("v", vlcc.ValueProvider(get, put))
        v0 = ck.checkpoint(step=0)
        state["fail_get"] = True                     # capture (gather_decide)
        with pytest.raises(vlcc.VlccError, match="capture failed"):
            ck.checkpoint(step=1)
        state["fail_get"] = False
        state["fail_set"] = True                     # copy-in (agree)
        with pytest.raises(vlcc.VlccError, match="restore failed"):
            ck.restore(v0)
        state["fail_set"] = False
        ck.tag("t0", v0)
        with pytest.raises(vlcc.RefExistsError):     # rank-0-only ref work (root_only)
            ck.tag("t0", v0)
        with pytest.raises(vlcc.NotFoundError):      # plan resolution (root_only)
            ck.plan(["tag:nope"])
        assert ck.checkpoint(step=2).parent == v0.id   # still usable, nothing partial
        assert [v.step for v in ck.log()] == [2, 0]


def test_ref_and_restore_call_sites_fail_on_all_ranks(comm, mpi_tmp):
    """The collective ref moves (commit/refmoves.py: root_only) and the restore's
    check phase (restore/collective.py: agree) raise on every rank, and leave
    the Checkpointer usable and its lineage unchanged."""
    import os
    from mpi4py import MPI
    path = os.path.join(mpi_tmp, f"s-{MPI.COMM_WORLD.rank if comm.rank == 0 else 0}")
    path = comm.bcast(path, root=0)
    u = np.arange(4.0) + comm.rank
    with vlcc.Checkpointer(path, comm) as ck:
        ck.register("u", u)
        v0 = ck.checkpoint(step=0)
        with pytest.raises(vlcc.NotFoundError, match="nope"):       # switch: unknown branch
            ck.switch("nope")
        assert ck.branch_name == "main" and ck.parent == v0.id
        ck.branch("b", v0)
        with pytest.raises(vlcc.RefExistsError):                    # branch: name taken
            ck.branch("b", v0)
        with pytest.raises(vlcc.NotFoundError):                     # branch at an unknown version
            ck.branch("c", "0123456789abcdef")
        # restore check phase: a registered provider the version lacks, on the last rank only
        extra = np.zeros(2)
        if comm.rank == comm.size - 1:
            ck.register("w", extra)
        with pytest.raises(vlcc.VlccError):
            ck.restore(v0)
        if comm.rank == comm.size - 1:
            ck.unregister("w")
        u[:] = -1
        assert ck.restore(v0).id == v0.id
        assert np.array_equal(u, np.arange(4.0) + comm.rank)


@pytest.mark.parametrize("fail", [None, "local", "size"])
def test_exchange_planned_sends_every_message_even_after_a_failure(comm, fail):
    """Rank r sends r+1 buffers to rank (r+1) % size with sizes every rank
    knows. A failing local() (or one that offers other sizes than agreed)
    on the last rank: its messages are sent as zeros, it gets the error back,
    nobody hangs, and the error can be agreed at the next collective."""
    n = comm.size
    sizes = {(r, (r + 1) % n): [100 * (k + 1) for k in range(r + 1)] for r in range(n)}
    me, dst = comm.rank, (comm.rank + 1) % n

    def local():
        if fail == "local" and me == n - 1:
            raise vlcc.StorageError("boom on the last rank")
        bad = fail == "size" and me == n - 1
        return {dst: [np.full(s + bad, me + 1, np.uint8) for s in sizes[(me, dst)]]}
    out, err = protocol.exchange_planned(comm, local, sizes)
    src = (me - 1) % n
    got = out[src]
    assert [b.nbytes for b in got] == sizes[(src, dst if n == 1 else me)]
    failed_src = fail is not None and src == n - 1
    assert all((b == (0 if failed_src else src + 1)).all() for b in got)
    assert (err is not None) == (fail is not None and me == n - 1)
    with pytest.raises((vlcc.VlccError, ValueError)) if fail else _nothing():
        protocol.agree(comm, lambda: (_ for _ in ()).throw(err) if err else None)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
