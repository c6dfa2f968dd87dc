"""Derived providers (vlcc.DerivedProvider / Checkpointer.register_derived):
a version stores the recipe and its inputs' names, no bytes; restore
recomputes the value from the restored inputs."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import vlcc
from mpi_helpers import on_root, index


def cast32(a):
    return a.astype(np.float32)


@pytest.mark.mpi
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_derived_cast_is_recomputed_not_stored(mpi_tmp, comm, mode):
    n = 5000
    u = np.linspace(0, 1, n) + comm.rank
    u32 = np.zeros(n, np.float32)
    step = {"t": 3}
    seen = []
    with vlcc.Checkpointer(mpi_tmp, comm, mode=mode) as ck:
        ck.register("u", u, global_shape=(n * comm.size,), offset=(n * comm.rank,))
        ck.register("t", vlcc.ValueProvider(get=lambda: step["t"], set=lambda v: step.update(t=v)))
        ck.register_derived("u32", cast32, ["u"], recipe={"op": "astype", "dtype": "float32"},
                            target=u32)
        # derived of a derived and a value: recomputed after both
        ck.register("scaled", vlcc.DerivedProvider(lambda a, t: a * t, ["u32", "t"],
                                                   recipe={"op": "mul"}, set=seen.append))
        v = ck.checkpoint(step=1)
        ck.wait()
        u[...] = -1
        step["t"] = 0
        ck.restore(v)
        expect = (np.linspace(0, 1, n) + comm.rank).astype(np.float32)
        np.testing.assert_array_equal(u32, expect)
        assert step["t"] == 3
        np.testing.assert_array_equal(seen[-1], expect * 3)
    v = vlcc.Repository(mpi_tmp).resolve(v.id)

    def check():
        e = v.providers["u32"]
        assert e["kind"] == "derived" and e["inputs"] == ["u"]
        assert e["recipe"] == {"op": "astype", "dtype": "float32"}
        assert all(b["nbytes"] == 0 for b in vlcc.Repository(mpi_tmp).blocks(v, "u32"))
        assert v.providers["scaled"]["inputs"] == ["u32", "t"]
        for r in range(comm.size):
            idx = index(mpi_tmp, v.id, r)
            assert idx["leaves"]["u32"]["chunks"] == []
        repo = vlcc.Repository(mpi_tmp)
        with pytest.raises(vlcc.VlccError, match="derived"):
            repo.read(v, "u32")
        repo.verify(deep=True)
    on_root(comm, check)


@pytest.mark.mpi
def test_changed_recipe_is_refused_before_anything_is_touched(mpi_tmp, comm):
    u = np.arange(10.0) + comm.rank
    out = np.zeros(10)
    with vlcc.Checkpointer(mpi_tmp, comm) as ck:
        ck.register("u", u)
        ck.register_derived("sq", np.square, ["u"], recipe={"op": "square"}, target=out)
        v = ck.checkpoint()
    u[...] = 7
    with vlcc.Checkpointer(mpi_tmp, comm) as ck:
        ck.register("u", u)
        ck.register_derived("sq", np.sqrt, ["u"], recipe={"op": "sqrt"}, target=out)
        with pytest.raises(vlcc.ProviderError, match="derivation changed"):
            ck.restore(v)
        assert (u == 7).all()   # nothing restored
        # registered as derived, stored as bytes (or the reverse): also refused
        ck.unregister("sq")
        ck.register("sq", out)
        with pytest.raises(vlcc.ProviderError):
            ck.restore(v)


def test_inputs_must_be_registered_first(tmp_path):
    with vlcc.Checkpointer(str(tmp_path / "r")) as ck:
        with pytest.raises(vlcc.MissingProviderError, match="not registered"):
            ck.register_derived("d", cast32, ["nope"])
        a = np.zeros(3)
        ck.register("a", a)
        ck.register_derived("d", cast32, ["a"])
        with pytest.raises(vlcc.ProviderError, match="input of derived"):
            ck.unregister("a")
        with pytest.raises(vlcc.ProviderError, match="JSON"):
            ck.register_derived("e", cast32, ["a"], recipe={"f": cast32})
        with pytest.raises(vlcc.ProviderError):
            ck.register_derived("e", cast32, "a")


def test_default_recipe_names_the_function_and_shape_is_checked(tmp_path):
    repo = str(tmp_path / "r")
    a = np.arange(4.0)
    target = np.zeros(5, np.float32)
    with vlcc.Checkpointer(repo) as ck:
        ck.register("a", a)
        ck.register_derived("d", cast32, ["a"], target=target)
        v = ck.checkpoint()
        with pytest.raises(vlcc.ShapeMismatchError, match="recomputed shape"):
            ck.restore(v)
    assert v.providers["d"]["recipe"] == {"fn": f"{__name__}.cast32"}


@pytest.mark.parametrize("n,m", [(2, 3), (3, 1)])
def test_derived_of_distributed_array_after_n_to_m(tmp_path, mpirun, n, m):
    # coalesce_nm.py registers small32 = astype(small) and checks it after restore
    repo = str(tmp_path / "repo")
    w = json.loads(mpirun(n, "coalesce_nm.py", repo, "write").stdout.strip().splitlines()[-1])
    r = json.loads(mpirun(m, "coalesce_nm.py", repo, "read").stdout.strip().splitlines()[-1])
    assert r == {"ok": True, "version": w["version"]}
    e = vlcc.Repository(repo).resolve(w["version"]).providers["small32"]
    assert e["kind"] == "derived" and e["inputs"] == ["small"]
    assert len(vlcc.Repository(repo).blocks(w["version"], "small32")) == n
