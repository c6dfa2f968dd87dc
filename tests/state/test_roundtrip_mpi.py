"""Round trip of every provider kind on the communicator's rank count (1, 2, 3, ...).

Run serially with ``pytest --with-mpi`` and under
``mpiexec -n N python -m pytest --with-mpi --only-mpi tests/state/test_roundtrip_mpi.py``.
Every expectation is derived from ``comm.size``; comparisons are bit-exact
(bytes, so NaN payloads and -0.0 count)."""

from __future__ import annotations

import os

import numpy as np
import pytest

import vlcc
from mpi_helpers import COMM_KINDS, communicator

pytestmark = pytest.mark.mpi


@pytest.fixture(params=COMM_KINDS)
def comm(request):
    with communicator(request.param) as c:
        yield c


@pytest.fixture
def mpi_tmp(mpi_tmp, comm):
    """One directory per communicator (the two halves of a split write apart)."""
    from mpi4py import MPI
    sub = os.path.join(mpi_tmp, f"c{comm.bcast(MPI.COMM_WORLD.rank, root=0)}")
    if comm.rank == 0:
        os.makedirs(sub, exist_ok=True)
    comm.Barrier()
    return sub

DTYPES = ["float64", "float32", "int32", "int64", "uint8", "int16", "complex128", "complex64",
          "bool", "float16", ">f8", "<i4"]


def pattern(shape, dtype, seed) -> np.ndarray:
    """Deterministic content with awkward bit patterns (NaN, -0.0, inf, extremes)."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    if dt.kind == "b":
        a = rng.integers(0, 2, n).astype(bool)
    elif dt.kind in "iu":
        info = np.iinfo(dt)
        a = rng.integers(info.min, info.max, n, dtype=dt, endpoint=True)
        if n >= 2:
            a[0], a[-1] = info.min, info.max
    elif dt.kind == "f":
        a = (rng.standard_normal(n) * 1e3).astype(dt)
        special = np.array([np.nan, -0.0, np.inf, -np.inf], dtype=dt)
        a[:min(n, 4)] = special[:min(n, 4)]
    else:  # complex
        a = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(dt)
        if n:
            a[0] = complex(np.nan, -0.0)
    return a.reshape(shape)


def same_bytes(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and \
        np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def scramble(a: np.ndarray) -> None:
    """Overwrite an array in place with different bytes (restore must bring them back)."""
    if a.size:
        a.reshape(-1).view(np.uint8)[:] ^= 0x5A


def split(n: int, parts: int, i: int) -> tuple[int, int]:
    """(start, length) of part i of n elements cut into ``parts`` near-equal pieces."""
    q, r = divmod(n, parts)
    start = i * q + min(i, r)
    return start, q + (1 if i < r else 0)


# ----------------------------------------------------------------------------- per-rank arrays
def test_per_rank_arrays_every_dtype(comm, mpi_tmp):
    rank, size = comm.rank, comm.size
    repo = os.path.join(mpi_tmp, "repo")
    arrays = {}
    with vlcc.Checkpointer(repo, comm=comm, chunk_size=64) as ck:
        for k, dt in enumerate(DTYPES):
            # Shapes differ per rank: per-rank arrays need not agree on shape.
            shape = (3 + rank, 5) if k % 2 else (17 + 2 * rank,)
            arrays[dt] = pattern(shape, dt, seed=1000 * k + rank)
            ck.register(f"arr/{dt.replace('<', 'le').replace('>', 'be')}", arrays[dt])
        v = ck.checkpoint(step=3, message="dtypes")
        expect = {dt: a.copy() for dt, a in arrays.items()}
        for a in arrays.values():
            scramble(a)
        got = ck.restore()
        assert got.id == v.id
        for dt, a in arrays.items():
            assert same_bytes(a, expect[dt]), f"{dt} differs after restore on rank {rank}"
    assert v.nranks == size
    for dt in DTYPES:
        e = v.providers[f"arr/{dt.replace('<', 'le').replace('>', 'be')}"]
        assert e["kind"] == "array" and np.dtype(e["dtype"]) == np.dtype(dt)
        blocks = vlcc.Repository(repo).blocks(v, f"arr/{dt.replace('<', 'le').replace('>', 'be')}")
        assert [b["rank"] for b in blocks] == list(range(size))
    # Repository.read gives any rank's block without MPI.
    r = vlcc.Repository(repo)
    for dt in ("float64", "complex128", "bool"):
        got = r.read(v, f"arr/{dt}", rank=rank)
        assert same_bytes(got, expect[dt])


def test_zero_d_and_empty_arrays(comm, mpi_tmp):
    rank = comm.rank
    scalar = np.array(np.float64(rank) + 0.25)
    iscalar = np.array(np.int32(-7 - rank))
    empty1 = np.empty((0,), np.float32)
    empty2 = np.empty((3, 0), np.complex128)
    # Empty on some ranks only: rank parity decides.
    maybe = np.arange(rank % 2 * 4, dtype=np.int64)
    with vlcc.Checkpointer(os.path.join(mpi_tmp, "r"), comm=comm, chunk_size=64) as ck:
        for n, a in [("s", scalar), ("i", iscalar), ("e1", empty1), ("e2", empty2), ("m", maybe)]:
            ck.register(n, a)
        v = ck.checkpoint()
        scalar[()] = -1.0
        iscalar[()] = 0
        maybe[:] = -1
        ck.restore(v)
    assert scalar.shape == () and scalar[()] == np.float64(rank) + 0.25
    assert iscalar[()] == -7 - rank
    assert empty1.shape == (0,) and empty2.shape == (3, 0)
    assert np.array_equal(maybe, np.arange(rank % 2 * 4))
    r = vlcc.Repository(os.path.join(mpi_tmp, "r"))
    assert r.blocks(v, "e2")[0]["nbytes"] == 0
    assert r.blocks(v, "s")[rank]["shape"] == []


def test_replicated_array_reads_without_rank(comm, mpi_tmp):
    """Identical bytes on every rank are recorded as replicated."""
    w = pattern((6, 4), "float64", seed=42)
    per = np.full(3, comm.rank, np.int32)
    repo = os.path.join(mpi_tmp, "r")
    with vlcc.Checkpointer(repo, comm=comm) as ck:
        ck.register("w", w)
        ck.register("per", per)
        v = ck.checkpoint()
    assert v.providers["w"]["replicated"] is True
    assert v.providers["per"]["replicated"] is (comm.size == 1)
    assert same_bytes(vlcc.Repository(repo).read(v.id, "w"), w)
    if comm.size > 1:
        with pytest.raises(vlcc.VlccError, match="differs per rank"):
            vlcc.Repository(repo).read(v.id, "per")


# ----------------------------------------------------------------------------- distributed
@pytest.mark.parametrize("ndim,halo", [(1, 1), (2, 1), (2, (2, 1)), (3, (1, 0, 2))])
def test_distributed_block_with_halo(comm, mpi_tmp, ndim, halo):
    """Only the owned interior is stored and restored; halos are left untouched;
    Repository.read assembles the global array from every rank's interior."""
    rank, size = comm.rank, comm.size
    gshape = {1: (23,), 2: (11, 7), 3: (5, 6, 4)}[ndim]
    h = (halo,) * ndim if np.isscalar(halo) else halo
    start, n0 = split(gshape[0], size, rank)
    owned = (n0,) + gshape[1:]
    offset = (start,) + (0,) * (ndim - 1)
    glob = pattern(gshape, "float64", seed=7)
    u = np.full(tuple(n + 2 * x for n, x in zip(owned, h)), -1.0)
    interior = tuple(slice(x, x + n) for x, n in zip(h, owned))
    u[interior] = glob[tuple(slice(o, o + n) for o, n in zip(offset, owned))]
    seen = []
    repo = os.path.join(mpi_tmp, "r")
    with vlcc.Checkpointer(repo, comm=comm, chunk_size=64) as ck:
        ck.register("heat/u", u, global_shape=gshape, offset=offset, halo=halo,
                    on_restore=lambda arr: seen.append(arr is u))
        v = ck.checkpoint(step=1)
        u[...] = 99.0             # interior scrambled, halos set to a new value
        ck.restore(v)
    mask = np.ones(u.shape, bool)
    mask[interior] = False
    assert same_bytes(u[interior], glob[tuple(slice(o, o + n) for o, n in zip(offset, owned))])
    assert np.all(u[mask] == 99.0), "restore wrote into the halo"
    assert seen == [True], "on_restore must be called once with the full array"
    e = v.providers["heat/u"]
    assert e["kind"] == "distributed" and tuple(e["global_shape"]) == gshape
    blocks = vlcc.Repository(repo).blocks(v, "heat/u")
    assert sum(b["nbytes"] for b in blocks) == glob.nbytes  # no halo bytes stored
    assert same_bytes(vlcc.Repository(repo).read(v, "heat/u"), glob)


def test_distributed_column_split_and_dtypes(comm, mpi_tmp):
    """Blocks cut along the last axis (non-contiguous in the global C order)."""
    rank, size = comm.rank, comm.size
    repo = os.path.join(mpi_tmp, "r")
    gshape = (9, 3 * size + 2)
    start, n = split(gshape[1], size, rank)
    arrays = {}
    with vlcc.Checkpointer(repo, comm=comm, chunk_size=64) as ck:
        for dt in ("int32", "float32", "complex128", "bool"):
            g = pattern(gshape, dt, seed=3)
            arrays[dt] = (g, np.ascontiguousarray(g[:, start:start + n]))
            ck.register(f"f/{dt}", arrays[dt][1], global_shape=gshape, offset=(0, start))
        v = ck.checkpoint()
        for _, a in arrays.values():
            scramble(a)
        ck.restore()
    for dt, (g, a) in arrays.items():
        assert same_bytes(a, g[:, start:start + n]), dt
        assert same_bytes(vlcc.Repository(repo).read(v, f"f/{dt}"), g), dt


# ----------------------------------------------------------------------------- values & objects
def test_value_provider(comm, mpi_tmp):
    rank = comm.rank
    state = {"t": 0.125 * (rank + 1), "step": 10 + rank, "rng": np.random.default_rng(rank).bit_generator.state,
             "cfg": {"name": "heat", "tuple": (1, 2.5, None), "arr": np.arange(3 + rank)}}
    box = {}
    log_only = []
    with vlcc.Checkpointer(os.path.join(mpi_tmp, "r"), comm=comm) as ck:
        ck.register("solver/state", vlcc.ValueProvider(get=lambda: state, set=box.update))
        ck.register("meta/run", vlcc.ValueProvider(get=lambda: {"pid": "x"}))  # write-only
        ck.register("meta/count", vlcc.ValueProvider(get=lambda: len(log_only), set=log_only.append))
        v = ck.checkpoint()
        ck.restore(v)
    assert box["t"] == state["t"] and box["step"] == state["step"]
    assert box["rng"] == state["rng"]
    assert box["cfg"]["tuple"] == (1, 2.5, None)
    assert same_bytes(box["cfg"]["arr"], state["cfg"]["arr"])
    assert box["cfg"] is not state["cfg"], "restore must hand back a new object"
    assert log_only == [0]
    assert v.providers["solver/state"]["kind"] == "value"


class Model:
    """An object provider: capture() -> dict of arrays and values, restore(dict)."""

    def __init__(self, rank: int):
        self.w = pattern((4, 3), "float32", seed=rank)
        self.b = pattern((3,), "complex128", seed=rank + 100)
        self.mask = pattern((5,), "bool", seed=rank + 200)
        self.epoch = 5 + rank
        self.lr = 1e-3
        self.restored = None

    def capture(self) -> dict:
        return {"w": self.w, "b": self.b, "mask": self.mask, "epoch": self.epoch,
                "opt": {"lr": self.lr, "betas": (0.9, 0.999)}}

    def restore(self, state: dict) -> None:
        self.restored = state
        self.w, self.b, self.mask = state["w"], state["b"], state["mask"]
        self.epoch, self.lr = state["epoch"], state["opt"]["lr"]


class Empty:
    def __init__(self):
        self.calls = []

    def capture(self):
        return {}

    def restore(self, state):
        self.calls.append(state)


def test_object_provider(comm, mpi_tmp):
    rank = comm.rank
    m = Model(rank)
    e = Empty()
    ref = Model(rank)
    with vlcc.Checkpointer(os.path.join(mpi_tmp, "r"), comm=comm) as ck:
        ck.register("model", m)
        ck.register("empty", e)
        v = ck.checkpoint()
        m.w = np.zeros_like(m.w)
        m.epoch, m.lr = -1, 0.0
        ck.restore(v)
    assert set(m.restored) == {"w", "b", "mask", "epoch", "opt"}
    assert same_bytes(m.w, ref.w) and same_bytes(m.b, ref.b) and same_bytes(m.mask, ref.mask)
    assert m.epoch == 5 + rank and m.lr == 1e-3
    assert m.restored["opt"] == {"lr": 1e-3, "betas": (0.9, 0.999)}
    assert e.calls == [{}]
    assert {n for n, p in v.providers.items() if p.get("of") == "model"} == \
        {"model/w", "model/b", "model/mask", "model/epoch", "model/opt"}


def test_mixed_state_and_history(comm, mpi_tmp):
    """All kinds in one state; three versions; each one restores its own content."""
    rank, size = comm.rank, comm.size
    gshape = (2 * size + 1, 5)
    start, n = split(gshape[0], size, rank)
    u = np.zeros((n + 2, 5 + 2))
    per = np.zeros(4, np.int32)
    step = {"k": 0}
    m = Model(rank)
    saved = []
    with vlcc.Checkpointer(os.path.join(mpi_tmp, "r"), comm=comm, chunk_size=64) as ck:
        ck.register("u", u, global_shape=gshape, offset=(start, 0), halo=1)
        ck.register("per", per)
        ck.register("step", vlcc.ValueProvider(get=lambda: step["k"], set=lambda k: step.update(k=k)))
        ck.register("model", m)
        for k in range(3):
            u[1:-1, 1:-1] = pattern((n, 5), "float64", seed=100 * k + rank)
            per[:] = np.arange(4) * (k + 1) + rank
            step["k"] = k
            m.w = pattern((4, 3), "float32", seed=10 * k + rank)
            v = ck.checkpoint(step=k)
            saved.append((v, u.copy(), per.copy(), m.w.copy()))
        for v, uu, pp, ww in [saved[1], saved[0], saved[2]]:
            u[...] = -5.0
            per[:] = -5
            ck.restore(v.id)
            assert same_bytes(u[1:-1, 1:-1], uu[1:-1, 1:-1])
            assert np.all(u[0] == -5.0) and np.all(u[:, 0] == -5.0)
            assert same_bytes(per, pp) and same_bytes(m.w, ww)
            assert step["k"] == v.step
        assert [x.id for x in ck.log("main")] == [s[0].id for s in reversed(saved)]
