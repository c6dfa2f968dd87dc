"""Fuzz the arguments of register() and checkpoint(): every call either
succeeds with a version that is listed and readable back, or raises a
VlccError before anything is committed — never a raw TypeError/ValueError
from deep inside, never a committed version that its own reader rejects."""

from __future__ import annotations

import random

import numpy as np
import pytest
from mpi4py import MPI

import vlcc

NAMES = ["u", "a/b", "x.y-z_1", "a\n", "", " a", "a/", "/a", "a//b", "é", 1, None, b"u", "a.lock"]
ARRAYS = [np.arange(6.0), np.zeros(0), np.zeros((0, 3)), np.arange(12, dtype=np.int32).reshape(3, 4),
          np.array(5.0), np.array([b"ab"]), np.zeros(3, dtype=[("a", "<f8")]), np.array([None]),
          [1, 2], 3, None, "text"]
GSHAPES = [None, (6,), (0,), (3, 4), ("6",), (6.0,), 6, [6], (-1,), (True,), (np.int64(6),), "6"]
OFFSETS = [None, (0,), (1,), ("0",), (0.5,), [0], -1, (0, 0)]
HALOS = [0, 1, -1, "1", (1,), None, 1.5, True]
STEPS = [None, 0, 7, -1, "1", 1.5, True, np.int64(2), [1]]
MESSAGES = ["", "msg", "a\nb", 123, None, b"x", ["m"]]
ATTRS = [None, {}, {"k": 1}, {"k": object()}, [1], {1: 2}, {"k": float("nan")}, {"k": "v" * 10}]


def _pick(rng, xs):
    return xs[rng.randrange(len(xs))]


@pytest.mark.parametrize("seed", range(6))
def test_fuzz_register_and_checkpoint(tmp_path, seed):
    rng = random.Random(seed)
    path = tmp_path / "repo"
    committed = []
    with vlcc.Checkpointer(path, comm=MPI.COMM_SELF) as ck:
        for _ in range(40):
            if rng.random() < 0.6:
                name, obj = _pick(rng, NAMES), _pick(rng, ARRAYS)
                kw = {}
                if rng.random() < 0.5:
                    kw["global_shape"] = _pick(rng, GSHAPES)
                    kw["offset"] = _pick(rng, OFFSETS)
                if rng.random() < 0.3:
                    kw["halo"] = _pick(rng, HALOS)
                kw = {k: v for k, v in kw.items() if v is not None or rng.random() < 0.5}
                if rng.random() < 0.2:
                    obj, kw = vlcc.ValueProvider(lambda v=_pick(rng, STEPS + MESSAGES): v), {}
                try:
                    ck.register(name, obj, **kw)
                except vlcc.VlccError:
                    pass
                continue
            step, msg, attrs = _pick(rng, STEPS), _pick(rng, MESSAGES), _pick(rng, ATTRS)
            if rng.random() < 0.5:
                step, msg, attrs = 1, "ok", None      # only the registrations are fuzzed
            if not ck.providers:
                ck.register("base", np.arange(4.0))
            before = [v.id for v in ck.log()]
            try:
                v = ck.checkpoint(step=step, message=msg, attrs=attrs)
            except vlcc.VlccError:
                assert [x.id for x in ck.log()] == before, "a failed checkpoint committed a version"
                if ck.providers:           # e.g. a gappy decomposition: drop one, go on
                    ck.unregister(_pick(rng, sorted(ck.providers)))
                continue
            committed.append(v)
    repo = vlcc.Repository(path)
    listed = {v.id for v in repo.log()}
    assert committed, "the fuzz never reached a successful checkpoint"
    for v in committed:
        assert v.id in listed, f"version {v.id} committed but not listed"
        got = repo.resolve(v.id)
        assert isinstance(got.message, str)
        for name in got.providers:
            repo.read(got, name)          # its own reader accepts every version it committed
    repo.verify()
