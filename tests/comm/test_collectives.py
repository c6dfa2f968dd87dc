"""Every collective of vlcc goes through comm/protocol.py: an error on one
rank is raised on every rank, at every call site, and nobody hangs. Each body
runs on COMM_WORLD, a split sub-communicator and a Dup (mpi4py's practice)."""

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


def _fail_on_last(comm, exc=vlcc.ProviderError):
    def fn():
        if comm.rank == comm.size - 1:
            raise exc("boom on the last rank")
        return comm.rank
    return fn


@pytest.mark.parametrize("call", ["gather_decide", "agree", "allgather", "all_true", "root_only",
                                  "from_root", "any_bits", "max_int"])
def test_protocol_call_fails_everywhere(comm, call):
    fn = _fail_on_last(comm, vlcc.StorageError)
    calls = {
        "gather_decide": lambda: protocol.gather_decide(comm, fn, lambda xs: xs),
        "agree": lambda: protocol.agree(comm, fn),
        "allgather": lambda: protocol.allgather(comm, fn),
        "all_true": lambda: protocol.all_true(comm, lambda: fn() is not None),
        "root_only": lambda: protocol.root_only(comm, lambda: (_ for _ in ()).throw(
            vlcc.StorageError("boom on rank 0"))),
        "from_root": lambda: protocol.from_root(comm, lambda: (_ for _ in ()).throw(
            vlcc.StorageError("boom on rank 0"))),
        "any_bits": lambda: protocol.any_bits(comm, fn),
        "max_int": lambda: protocol.max_int(comm, fn),
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
    assert protocol.any_bits(comm, lambda: 1 << comm.rank) == (1 << comm.size) - 1


def test_max_int_is_a_collective_max(comm):
    assert protocol.max_int(comm, comm.rank - 5) == comm.size - 6
    assert protocol.max_int(comm, lambda: -comm.rank) == 0


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


# -- fault-injection sweep: every protocol call site, one rank fails ----------------------
# comm/protocol.FAULT makes the local part of the first call from one call site
# raise on one rank. Each configuration runs the scenario once recording the call
# sites (every rank), then once per site with the fault armed there: the error
# must be raised on every rank, by the same operation, nobody hangs (the MPI
# harness's timeout), and the repository's committed versions still verify.
SWEEP = {
    "sync": ({"mode": "sync"}, {}),
    "sync-rank-files": ({"mode": "sync"}, {"VLCC_NODE_FILES": "0"}),
    "async": ({"mode": "async"}, {}),
    # the flusher calls no MPI: the application's thread completes and commits
    "async-no-flush-mpi": ({"mode": "async"}, {"VLCC_FLUSH_MPI": "0"}),
    # every version staged through the node-local tier, promoted by the flusher
    "async-local": ({"mode": "async", "local_dir": True}, {}),
    "async-local-no-flush-mpi": ({"mode": "async", "local_dir": True}, {"VLCC_FLUSH_MPI": "0"}),
    # versions kept on the node-local tier only
    "async-node-local": ({"mode": "async", "local_dir": True, "persist": "never"}, {}),
}
SCOPE = ("commit", "restore", "checkpointer.py")   # every protocol call site there is swept


class _Injected(Exception):
    """The scenario stopped at the injected fault (or the error it became)."""


def _expect_error(comm, op):
    """``op`` must fail (an expected refusal); the injected fault, raised
    instead, ends the scenario. Every rank sees the same: the error is agreed."""
    try:
        op()
    except vlcc.VlccError as exc:
        if "injected fault" in str(exc):
            raise _Injected() from exc
        return
    except RuntimeError as exc:
        raise _Injected() from exc
    raise AssertionError(f"{op} did not fail")


def _scenario(comm, path: str, kw: dict) -> tuple[str, BaseException | None]:
    """checkpoint (also a refused one), restore (pending, memory, disk, direct),
    plan, branch, switch, tag, log, close, then reopen and restore: returns
    the operation that raised and the exception (or "done", None)."""
    u = np.arange(64.0) + comm.rank
    kw = dict(kw)
    if kw.get("local_dir"):
        kw["local_dir"] = path + "-local"

    def value():
        return vlcc.ValueProvider(lambda: {"k": comm.rank}, lambda v: None)
    at = "open"
    try:
        with vlcc.Checkpointer(path, comm, memory_budget="64MiB", **kw) as ck:
            ck.register("u", u)
            ck.register("v", value())
            at = "checkpoint"
            v0 = ck.checkpoint(step=0)
            ck.checkpoint(step=1)
            # provider lists differ: validation's second round
            at = "refused checkpoint"
            if comm.rank == comm.size - 1:
                ck.register("w", np.zeros(2))
            _expect_error(comm, lambda: ck.checkpoint(step=9))
            if comm.rank == comm.size - 1:
                ck.unregister("w")
            at = "restore pending"
            ck.restore()
            at = "wait"
            ck.wait()
            at = "restore"
            ck.restore(v0)
            ck.restore(v0, atomic=False)
            at = "plan"
            ck.plan([v0.id])
            at = "branch"
            ck.branch("b", v0)
            at = "switch"
            ck.switch("b")
            ck.switch("main")
            at = "tag"
            ck.tag("t0", v0)
            at = "log"
            ck.log()
            at = "checkpoint"
            ck.checkpoint(step=2)
            at = "close"
        at = "reopen"
        with vlcc.Checkpointer(path, comm, memory_budget="64MiB", **kw) as ck:
            ck.register("u", u)
            ck.register("v", value())
            at = "restore after reopen"
            ck.restore()          # the newest: still in the node stores when not persisted
            at = "close"
        return "done", None
    except _Injected as exc:
        return at, exc.__cause__
    except Exception as exc:   # noqa: BLE001 - compared across ranks by the caller
        return at, exc


def _fresh(comm, mpi_tmp: str, name: str) -> str:
    from mpi4py import MPI
    path = os.path.join(mpi_tmp, f"{name}-{MPI.COMM_WORLD.rank if comm.rank == 0 else 0}")
    return comm.bcast(path, root=0)


def _record(comm, mpi_tmp: str, config: str, monkeypatch) -> list[tuple[tuple, str, list[int]]]:
    """The scenario's protocol call sites: [(site, function, ranks that call it)],
    in first-call order (of rank 0's list, then the others')."""
    kw, env = SWEEP[config]
    for k, v in ({"VLCC_NODE_FILES": "1"} | env).items():
        monkeypatch.setenv(k, v)
    with protocol.FAULT.recording() as calls:
        at, exc = _scenario(comm, _fresh(comm, mpi_tmp, f"{config}-rec"), kw)
        calls = list(calls)
    assert comm.allgather((at, repr(exc))) == [("done", "None")] * comm.size
    sites: dict = {}
    for rank, mine in enumerate(comm.allgather(calls)):
        for site, fn in mine:
            sites.setdefault(site, (fn, set()))[1].add(rank)
    return [(site, fn, sorted(ranks)) for site, (fn, ranks) in sites.items()
            if not site[0].startswith("..")]


def _target(fn: str, ranks: list[int]) -> int:
    """The rank to fail: rank 0 where only it runs the local part, else the last."""
    return 0 if fn in ("from_root", "root_only") else ranks[-1]


# Every configuration, the ones whose flusher thread makes its own collectives
# too: this sweep found their hang (mpi4py's pickled allreduce duplicating the
# flusher's communicator on the flusher thread: comm/protocol.py, _mpi_reduce).
@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("config", sorted(SWEEP))
def test_a_fault_at_any_call_site_fails_every_rank(mpi_tmp, config, monkeypatch):
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    kw = SWEEP[config][0]
    bad = []
    for i, (site, fn, ranks) in enumerate(_record(comm, mpi_tmp, config, monkeypatch)):
        rank = _target(fn, ranks)
        for attempt in range(3):
            # async: whether a restore reads the memory tier or the disk depends
            # on the flusher's timing; a site this run did not reach is run again
            path = _fresh(comm, mpi_tmp, f"{config}-{i}-{attempt}")
            with protocol.FAULT.armed(site, rank) as fault:
                at, exc = _scenario(comm, path, kw)
                fired, reached = fault.fired, any(c == site for c, _f in fault.calls)
            outcomes = comm.allgather((at, type(exc).__name__ if exc else None, fired))
            if any(comm.allgather(reached)):
                break
        where = f"{config}: {site[0]}:{site[1]} ({fn}, rank {rank})"
        if sum(f for _a, _e, f in outcomes) != 1:
            bad.append(f"{where}: fired {[f for _a, _e, f in outcomes]}")
        elif any(e is None for _a, e, _f in outcomes) or len({a for a, _e, _f in outcomes}) != 1:
            bad.append(f"{where}: outcomes {[(a, e) for a, e, _f in outcomes]}")
        if comm.rank == 0 and os.path.exists(path):     # (not if creating it failed)
            try:
                vlcc.Repository(path).verify()
            except Exception as e:   # noqa: BLE001
                bad.append(f"{where}: verify: {type(e).__name__}: {e}")
        bad = comm.bcast(bad, root=0)
    assert not bad, "\n".join(bad)


def _protocol_call_sites() -> set[tuple[str, int, int]]:
    """(path, first line, last line) of every call of a protocol function in
    SCOPE, by AST: a direct call, or one passing it to a forwarding helper
    (``_coll(agree, comm, fn)``)."""
    import ast
    root = os.path.dirname(vlcc.__file__)
    funcs = {"gather_decide", "agree", "root_only", "from_root", "allgather", "all_true",
             "any_bits", "max_int", "exchange", "exchange_planned"}
    files = []
    for base in SCOPE:
        p = os.path.join(root, base)
        files += [p] if p.endswith(".py") else [os.path.join(d, f) for d, _s, fs in os.walk(p)
                                                for f in fs if f.endswith(".py")]
    out = set()
    for path in files:
        with open(path) as f:
            tree = ast.parse(f.read())
        names = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                 and (n.module or "").endswith("protocol") for a in n.names if a.name in funcs}

        def is_protocol(e) -> bool:
            return (isinstance(e, ast.Name) and e.id in names) or (
                isinstance(e, ast.Attribute) and e.attr in funcs
                and ast.unparse(e.value).split(".")[-1] == "protocol")
        for n in ast.walk(tree):
            if isinstance(n, ast.Call) and (is_protocol(n.func) or any(map(is_protocol, n.args))):
                out.add((os.path.relpath(path, root), n.lineno, n.end_lineno))
    return out


def test_protocol_call_sites_are_found():
    sites = _protocol_call_sites()
    files = {p for p, _a, _b in sites}
    assert {"checkpointer.py", os.path.join("restore", "collective.py"),
            os.path.join("commit", "checkpoint.py"), os.path.join("commit", "rankwrite.py"),
            os.path.join("commit", "refmoves.py")} <= files, files
    assert len(sites) >= 30, sorted(sites)


@pytest.mark.mpi(min_size=2)
def test_the_sweep_covers_every_protocol_call_site(mpi_tmp, monkeypatch):
    """Every protocol call site of commit/, restore/ and checkpointer.py (by
    AST) is one the sweep above fails: a new call site needs a scenario."""
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    seen = set()
    for config in SWEEP:
        with monkeypatch.context() as m:
            seen |= {site for site, _fn, _r in _record(comm, mpi_tmp, config, m)}
    missed = sorted(f"{p}:{a}" for p, a, b in _protocol_call_sites()
                    if not any(sp == p and a <= sl <= b for sp, sl in seen))
    assert not missed, "call sites no scenario reaches:\n" + "\n".join(missed)
