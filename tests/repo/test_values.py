"""Values are stored in a safe format (vlcc/repo/values.py, docs/format.md 3.2):
every supported type round-trips exactly, nothing a repository holds is
unpickled unless the reader opts in with ``allow_pickle=True``."""

from __future__ import annotations

import math
import os
import pickle
import random
import struct
import subprocess
import sys

import numpy as np
import pytest
from mpi4py import MPI

import vlcc
from vlcc.cli import EXIT_ERROR
from vlcc.repo.values import MAX_DEPTH, decode, encode
from conftest import TESTS_DIR

SELF = MPI.COMM_SELF
ROOT = os.path.dirname(TESTS_DIR)

SAMPLES = [
    None, True, False, 0, -7, 2 ** 200, -(2 ** 70), 1.5, -0.0, float("inf"), float("-inf"),
    "", "héllo\n", b"", b"\x00\xff", bytearray(b"ab"), 3 - 4j, [], (), {}, set(), frozenset({1, 2}),
    [1, (2, [3, (4,)])], (1,), {"a": 1, 2: "b", (3, 4): [5], None: None, 1.5: b"x", False: 0},
    {"nested": {"deeper": [{"k": (1, 2.5, "s")}]}},
    np.arange(12.0).reshape(3, 4), np.zeros((0, 3), np.int16), np.array(5, np.uint8),
    np.arange(10)[::3], np.asfortranarray(np.arange(6).reshape(2, 3)),
    np.array([1, 2], ">i4"), np.array([b"ab", b"c"]), np.array(["x", "yz"]),
    np.zeros(2, dtype=[("a", "<f8"), ("b", "<i4", (2,))]), np.array([1 + 2j], np.complex64),
    np.float32(1.25), np.int64(-3), np.bool_(True), np.uint16(7), np.datetime64("2026-01-02"),
    np.random.RandomState(3).get_state(), random.Random(4).getstate(),
    np.random.default_rng(5).bit_generator.state,
    {"rng": {"torch": np.arange(16, dtype=np.uint8), "numpy": np.random.RandomState(1).get_state()}},
]


def _same(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, np.generic):
        return a.dtype == b.dtype and a.tobytes() == b.tobytes()
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(k, j) for k, j in zip(a, b)) and \
            all(_same(a[k], b[k]) for k in a)
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


@pytest.mark.parametrize("value", SAMPLES + [float("nan")], ids=lambda v: type(v).__name__)
def test_every_supported_type_round_trips_exactly(value):
    dtype, raw = encode(value, "p")
    assert dtype == "vlcc-value"
    assert _same(decode(raw, dtype, "w"), value)


class _Opaque:
    def __eq__(self, other):
        return type(other) is _Opaque


def test_unsupported_value_needs_allow_pickle_and_names_provider_and_type(tmp_path):
    keep = np.arange(4.0)
    with vlcc.Checkpointer(tmp_path / "r", comm=SELF) as ck:
        ck.register("keep", keep)
        v1 = ck.checkpoint()
        ck.register("cfg", vlcc.ValueProvider(lambda: {"a": [_Opaque()]}))
        with pytest.raises(vlcc.ProviderError, match=r"provider 'cfg'.*test_values\._Opaque"
                                                     r".*allow_pickle=True"):
            ck.checkpoint()
        assert [v.id for v in ck.log()] == [v1.id]       # nothing committed


def test_repository_holds_no_pickle_without_opt_in(tmp_path):
    """A plain run stores its values in the safe format: readable without opt-in."""
    state = {"step": 3, "rng": np.random.RandomState(0).get_state(), "t": (1.0, [2, 3])}
    with vlcc.Checkpointer(tmp_path / "r", comm=SELF) as ck:
        ck.register("state", vlcc.ValueProvider(lambda: state))
        v = ck.checkpoint()
    assert v.providers["state"]["dtype"] == "vlcc-value"
    assert _same(vlcc.Repository(tmp_path / "r").read(v, "state"), state)


class _Evil:
    """Unpickling it creates a file: the proof that code ran."""
    marker = ""

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def evil_repo(tmp_path):
    """A repository whose value ``cfg`` runs code when unpickled (as a stranger
    could hand over), next to a plain array ``u``."""
    path = str(tmp_path / "evil")
    marker = str(tmp_path / "pwned")
    _Evil.marker = marker
    with vlcc.Checkpointer(path, comm=SELF, allow_pickle=True) as ck:
        ck.register("u", np.arange(6.0))
        ck.register("cfg", vlcc.ValueProvider(lambda: _Evil()))
        v = ck.checkpoint()
    assert v.providers["cfg"]["dtype"] == "pickle" and not os.path.exists(marker)
    return path, marker, v


def test_no_code_runs_on_read_restore_diff_export(evil_repo, tmp_path):
    path, marker, v = evil_repo
    repo = vlcc.Repository(path)
    with pytest.raises(vlcc.UnsafeValueError, match=r"provider 'cfg'.*pickle.*allow_pickle=True"):
        repo.read(v, "cfg")
    assert repo.read(v, "u").tolist() == list(range(6))       # arrays need no opt-in
    u = np.zeros(6)
    got = []
    with vlcc.Checkpointer(path, comm=SELF) as ck:
        ck.register("u", u)
        ck.register("cfg", vlcc.ValueProvider(lambda: 0, got.append))
        with pytest.raises(vlcc.UnsafeValueError, match="'cfg'"):
            ck.restore(v.id)
    assert not u.any() and not got                             # nothing modified
    with pytest.raises(vlcc.UnsafeValueError):
        vlcc.diff(path, path)
    env = dict(os.environ, PYTHONPATH=ROOT)
    for args in (["export", path, str(tmp_path / "out.npz")], ["diff", path, path]):
        r = subprocess.run([sys.executable, "-m", "vlcc.cli", *args], env=env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == EXIT_ERROR and "allow-pickle" in r.stderr and "Traceback" not in r.stderr, r
        assert not os.path.exists(tmp_path / "out.npz")
    assert not os.path.exists(marker)
    # the opt-in really unpickles (so the refusals above are what kept the marker away)
    repo.read(v, "cfg", allow_pickle=True)
    assert os.path.exists(marker)
    os.remove(marker)
    r = subprocess.run([sys.executable, "-m", "vlcc.cli", "export", path, str(tmp_path / "o.npz"),
                        "--allow-pickle", "-q"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and os.path.exists(marker), r


def test_pickle_round_trip_with_opt_in(tmp_path):
    with vlcc.Checkpointer(tmp_path / "r", comm=SELF, allow_pickle=True) as ck:
        ck.register("o", vlcc.ValueProvider(lambda: _Opaque()))
        ck.register("plain", vlcc.ValueProvider(lambda: [1, 2]))
        v = ck.checkpoint()
        got = []
        ck.register("o2", vlcc.ValueProvider(lambda: 0, got.append))
    assert v.providers["plain"]["dtype"] == "vlcc-value"    # safe whenever possible
    assert vlcc.Repository(tmp_path / "r").read(v, "o", allow_pickle=True) == _Opaque()
    got = []
    with vlcc.Checkpointer(tmp_path / "r", comm=SELF, allow_pickle=True) as ck:
        ck.register("o", vlcc.ValueProvider(lambda: 0, got.append))
        ck.register("plain", vlcc.ValueProvider(lambda: 0, got.append))
        ck.restore()
    assert got == [_Opaque(), [1, 2]]


def _blob(tree: bytes, body: bytes = b"") -> np.ndarray:
    return np.frombuffer(struct.pack("<8sQ", b"VLCCVAL1", len(tree)) + tree + body, np.uint8)


@pytest.mark.parametrize("tree,body,match", [
    (b"[" * 100000 + b"]" * 100000, b"", "nested too deeply"),
    (b"[" * (MAX_DEPTH + 5) + b"]" * (MAX_DEPTH + 5), b"", "nested deeper"),
    (b'{"ndarray":{"dtype":"<f8","shape":[1099511627776],"data":[0,8]}}', b"\0" * 8, "needs"),
    (b'{"ndarray":{"dtype":"|O","shape":[1],"data":[0,8]}}', b"\0" * 8, "objects|dtype"),
    (b'{"bytes":[0,1099511627776]}', b"", "outside"),
    (b'{"ndarray":{"dtype":"<f8","shape":[-1],"data":[0,8]}}', b"\0" * 8, "shape"),
    (b'{"dict":[[[1],2]]}', b"", "unhashable"),
    (b'{"evil":1}', b"", "unknown node"),
    (b'{"a":1,"b":2}', b"", "unexpected node"),
    (b"\xff\xfe", b"", "malformed"),
])
def test_crafted_value_bytes_give_corruption_error(tree, body, match):
    with pytest.raises(vlcc.CorruptionError, match=match):
        decode(_blob(tree, body), "vlcc-value", "version x, provider 'p'")


def test_crafted_header_claiming_huge_length():
    raw = np.frombuffer(struct.pack("<8sQ", b"VLCCVAL1", 1 << 40) + b"{}", np.uint8)
    with pytest.raises(vlcc.CorruptionError, match="bad header"):
        decode(raw, "vlcc-value", "w")
    with pytest.raises(vlcc.CorruptionError, match="unknown value encoding"):
        decode(raw, "marshal", "w")


def test_blocks_decode_by_their_bytes_when_ranks_encoded_differently():
    """With allow_pickle=True a writer pickles per rank only what needs it, so
    one provider may hold a safe block on one rank and a pickle on another
    under rank 0's dtype: each block decodes by its bytes, a pickle only for a
    reader that opted in."""
    _d, safe = encode({"a": 1}, "v", allow_pickle=True)
    pickled = np.frombuffer(pickle.dumps(range(3), protocol=5), np.uint8)
    assert decode(safe, "pickle", "w", allow_pickle=True) == {"a": 1}
    assert decode(pickled, "vlcc-value", "w", allow_pickle=True) == range(3)
    with pytest.raises(vlcc.CorruptionError, match="bad header"):
        decode(pickled, "vlcc-value", "w")          # never unpickled without the opt-in
