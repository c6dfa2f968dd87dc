"""Providers, serially: one parametrized round trip through a real repository for
every provider kind, and the registration rules (names, options, bad objects)."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from mpi4py import MPI

import vlcc
from vlcc.state.array import ArrayProvider
from vlcc.state.registry import State

SELF = MPI.COMM_SELF


def same_bytes(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


class Obj:
    def __init__(self, w, step):
        self.w, self.step = w, step

    def capture(self):
        return {"w": self.w, "step": self.step}

    def restore(self, d):
        self.w, self.step = d["w"], d["step"]


def _array(dtype, shape):
    rng = np.random.default_rng(zlib.crc32(repr((dtype, shape)).encode()))
    raw = rng.integers(0, 256, int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize,
                       dtype=np.uint8)
    a = raw.view(dtype).reshape(shape).copy()
    if np.dtype(dtype) == np.bool_:
        a = (raw % 2).astype(bool).reshape(shape)
    return a


# Every kind: (name, make() -> (obj, register kwargs, expected, scramble(obj), read_back(obj)))
def _kinds():
    out = []
    for dt in ("float64", "float32", "int32", "int8", "uint64", "complex128", "bool", ">i2"):
        for shape in ((), (0,), (7,), (3, 5), (2, 3, 4)):
            def make(dt=dt, shape=shape):
                a = _array(dt, shape)
                exp = a.copy()
                return a, {}, exp, lambda x: x.fill(0), lambda x: x
            out.append((f"array-{dt}-{'x'.join(map(str, shape)) or 'scalar'}", make))

    def dist():
        g = _array("float64", (6, 9))
        u = np.full((6 + 2, 9 + 2), 123.0)
        u[1:-1, 1:-1] = g

        def back(x):
            assert np.all(x[0] == 123.0) and np.all(x[:, -1] == 123.0), "halo was touched"
            return x[1:-1, 1:-1]
        return u, dict(global_shape=(6, 9), offset=(0, 0), halo=1), g, lambda x: x.fill(123.0), back
    out.append(("distributed-halo", dist))

    def value():
        box = {"v": {"a": 1, "b": [1.5, None], "c": np.arange(3)}}
        p = vlcc.ValueProvider(get=lambda: box["v"], set=lambda v: box.update(v=v))
        return p, {}, box["v"], lambda _p: box.update(v=None), lambda _p: box["v"]
    out.append(("value", value))

    def obj():
        o = Obj(_array("complex64", (4, 2)), 17)
        exp = {"w": o.w.copy(), "step": 17}

        def scr(x):
            x.w, x.step = None, None
        return o, {}, exp, scr, lambda x: {"w": x.w, "step": x.step}
    out.append(("object", obj))
    return out


KINDS = _kinds()


@pytest.mark.parametrize("make", [m for _, m in KINDS], ids=[n for n, _ in KINDS])
def test_round_trip_every_kind(tmp_path, make):
    obj, kw, expected, scramble, read_back = make()
    with vlcc.Checkpointer(tmp_path / "repo", comm=SELF, chunk_size=16) as ck:
        ck.register("p", obj, **kw)
        v = ck.checkpoint(step=1)
        scramble(obj)
        assert ck.restore().id == v.id
    got = read_back(obj)
    if isinstance(expected, dict):
        assert set(got) == set(expected)
        for k in expected:
            if isinstance(expected[k], np.ndarray):
                assert same_bytes(got[k], expected[k]), k
            else:
                assert got[k] == expected[k], k
    else:
        assert same_bytes(got, expected)


def test_restore_writes_into_the_registered_memory(tmp_path):
    """Arrays are restored in place (the application keeps its references)."""
    a = np.arange(12.0).reshape(3, 4)
    view = a[1]
    with vlcc.Checkpointer(tmp_path / "r", comm=SELF) as ck:
        ck.register("a", a)
        ck.checkpoint()
        a[:] = 0
        ck.restore()
    assert view[0] == 4.0 and a[2, 3] == 11.0


def test_non_contiguous_array_is_captured_by_value(tmp_path):
    base = np.arange(40, dtype=np.int32).reshape(5, 8)
    view = base[:, ::2]          # not C-contiguous
    with vlcc.Checkpointer(tmp_path / "r", comm=SELF) as ck:
        ck.register("v", view)
        v = ck.checkpoint()
    assert same_bytes(vlcc.Repository(tmp_path / "r").read(v, "v"), np.ascontiguousarray(view))


# ----------------------------------------------------------------------------- registration rules
@pytest.mark.parametrize("name", ["", "/a", "a/", "a//b", "a b", "a/../b", "ä", ".hidden", None, 3])
def test_invalid_provider_names(name):
    with pytest.raises(vlcc.ProviderError, match="invalid provider name"):
        State().add(name, np.zeros(2))


@pytest.mark.parametrize("name", ["a", "solver/u", "optimizer/adam/exp_avg/0", "x.y-z_1"])
def test_valid_provider_names(name):
    s = State()
    s.add(name, np.zeros(2))
    assert list(s.providers) == [name]


def test_array_provider_rejects_bad_shapes():
    with pytest.raises(vlcc.ProviderError, match="object arrays"):
        ArrayProvider(np.array([object()]), name="o")
    # Stored as '|V12' the field names would be lost and no restore could succeed.
    rec = np.zeros(4, dtype=[("x", "f8"), ("n", "i4")])
    with pytest.raises(vlcc.ProviderError, match="'r': structured or void dtype"):
        ArrayProvider(rec, name="r")
    with pytest.raises(vlcc.ProviderError, match="structured or void dtype"):
        ArrayProvider(np.zeros(4, dtype="V8"), name="v")
    ArrayProvider(rec["x"], name="x")          # a field on its own is an ordinary strided array
    with pytest.raises(vlcc.ProviderError, match="halo .* wider"):
        ArrayProvider(np.zeros((3, 3)), global_shape=(3, 3), halo=2, name="h")
    with pytest.raises(vlcc.ProviderError, match="does not fit a 2-D"):
        ArrayProvider(np.zeros((3, 3)), global_shape=(3, 3), halo=(1, 1, 1), name="h")
    with pytest.raises(vlcc.ProviderError, match="offset given without global_shape"):
        ArrayProvider(np.zeros(3), offset=(0,), name="x")
    with pytest.raises(vlcc.ProviderError, match="outside the global shape"):
        ArrayProvider(np.zeros(4), global_shape=(5,), offset=(2,), name="x")
    with pytest.raises(vlcc.ProviderError, match="must have 2 entries"):
        ArrayProvider(np.zeros((2, 2)), global_shape=(4,), name="x")
    with pytest.raises(vlcc.ProviderError, match="expected a numpy array"):
        ArrayProvider([1, 2], name="x")


def test_register_rejects_unknown_objects_and_misplaced_options(tmp_path):
    with vlcc.Checkpointer(tmp_path / "r", comm=SELF) as ck:
        with pytest.raises(vlcc.ProviderError, match=r"'x'.*cannot register a list"):
            ck.register("x", [1, 2, 3])
        with pytest.raises(vlcc.ProviderError, match="numpy arrays only"):
            ck.register("v", vlcc.ValueProvider(get=lambda: 1), global_shape=(3,))
        with pytest.raises(vlcc.ProviderError, match="needs a callable"):
            vlcc.ValueProvider(get=3)
        assert ck.providers == []
        with pytest.raises(vlcc.ProviderError, match="no provider is registered"):
            ck.checkpoint()
        with pytest.raises(vlcc.ProviderError, match="'nope' is not registered"):
            ck.unregister("nope")


class BadCapture:
    def __init__(self, result):
        self.result = result

    def capture(self):
        if isinstance(self.result, Exception):
            raise self.result
        return self.result

    def restore(self, d):
        pass


@pytest.mark.parametrize("result,match", [
    ([1, 2], "returned list, expected a dict"),
    ({"a/b": 1}, "must be a non-empty str without '/'"),
    ({"": 1}, "must be a non-empty str"),
    ({"f": lambda: 1}, "obj/f.*builtins.function.*safe value format.*allow_pickle=True"),
    (RuntimeError("sensor offline"), "capturing provider 'obj' failed: RuntimeError: sensor offline"),
])
def test_bad_capture_fails_checkpoint_and_commits_nothing(tmp_path, result, match):
    keep = np.arange(5.0)
    with vlcc.Checkpointer(tmp_path / "r", comm=SELF) as ck:
        ck.register("keep", keep)
        v1 = ck.checkpoint()
        ck.register("obj", BadCapture(result))
        with pytest.raises(vlcc.ProviderError, match=match):
            ck.checkpoint()
        ck.unregister("obj")
        v2 = ck.checkpoint()
        assert v2.parent == v1.id, "the failed checkpoint must not become a parent"
    repo = vlcc.Repository(tmp_path / "r")
    assert [v.id for v in repo.log()] == [v2.id, v1.id]
    assert sorted(p for p in (tmp_path / "r" / "data").iterdir()) == \
        sorted(tmp_path / "r" / "data" / x for x in (v1.id, v2.id))
    assert same_bytes(repo.read(v1, "keep"), np.arange(5.0))


def test_step_and_attrs_are_validated(tmp_path):
    with vlcc.Checkpointer(tmp_path / "r", comm=SELF) as ck:
        ck.register("a", np.zeros(1))
        with pytest.raises(vlcc.VlccError, match="step must be an int"):
            ck.checkpoint(step=1.5)
        with pytest.raises(vlcc.VlccError, match="attrs must be JSON-serializable"):
            ck.checkpoint(attrs={"x": object()})
        v = ck.checkpoint(step=np.int64(4), message="m", attrs={"dt": 0.5, "tags": ["a"]})
    assert (v.step, v.message, v.attrs) == (4, "m", {"dt": 0.5, "tags": ["a"]})
    assert vlcc.Repository(tmp_path / "r").log() == [v]


def test_closed_checkpointer_refuses_work(tmp_path):
    ck = vlcc.Checkpointer(tmp_path / "r", comm=SELF)
    ck.close()
    ck.close()  # idempotent
    with pytest.raises(vlcc.VlccError, match="is closed"):
        ck.register("a", np.zeros(1))
    with pytest.raises(vlcc.VlccError, match="is closed"):
        ck.checkpoint()
