"""Defensive parsing (vlcc/repo/schema.py): a manifest or rank index that
carries a VALID checksum but is malformed (a foreign or buggy writer) gives
CorruptionError naming the file and the field — never KeyError, TypeError,
IndexError or ValueError — and a damaged manifest does not break ``log()``
or opening the repository.

The sweep takes the golden repositories (2 ranks, every leaf kind; format 3
with tiled leaves gets most edits),
applies one random structural edit to a manifest or an index (delete a key,
change a type, a negative or huge number, an out-of-range index, an unknown
kind, wrong nesting), re-seals it and every checksum that covers it (index →
ranks.bin → manifest), then opens, lists, reads every provider and verifies.
Deterministic seeds."""

from __future__ import annotations

import copy
import json
import os
import random
import shutil
import warnings

import numpy as np
import pytest

import vlcc
from vlcc.errors import CorruptionError, FormatVersionError, MissingProviderError, VlccError
from vlcc.repo.checksums import chunk_hash
from vlcc.repo.sealed import seal
from conftest import TESTS_DIR

HERE = os.path.join(TESTS_DIR, "fixtures")
TRIALS = 200
# a clear error for a well-formed edit: the provider really is gone, the version is foreign
CLEAR = (CorruptionError, FormatVersionError, MissingProviderError)


def _nodes(doc, path=()):
    """Every (container, key, path) below ``doc`` except the seal."""
    items = doc.items() if isinstance(doc, dict) else enumerate(doc)
    for k, v in items:
        if not path and k == "checksum":
            continue
        yield doc, k, path + (k,)
        if isinstance(v, (dict, list)):
            yield from _nodes(v, path + (k,))


_OTHER = [None, True, -1, -7, 2 ** 70, 1.5, "x", "tensor", "", [], {}, [1], {"a": 1}, [[0]]]


def _mutate(doc: dict, rng: random.Random) -> str:
    """One structural edit, in place; returns what it did."""
    parent, key, path = rng.choice(list(_nodes(doc)))
    v = parent[key]
    ops = ["delete", "retype", "retype"]
    if isinstance(v, int) and not isinstance(v, bool):
        ops += ["negative", "beyond", "beyond"]
    if isinstance(v, list):
        ops += ["grow", "shrink", "wrap"]
    if isinstance(v, dict):
        ops += ["wrap", "unknown-key"]
    op = rng.choice(ops)
    if op == "delete":
        del parent[key]
    elif op == "retype":
        parent[key] = rng.choice([o for o in _OTHER if type(o) is not type(v)])
    elif op == "negative":
        parent[key] = -v - 1
    elif op == "beyond":
        parent[key] = v + rng.choice([1, 3, 1000, 10 ** 9])
    elif op == "grow":
        v.append(copy.deepcopy(v[-1]) if v else 0)
    elif op == "shrink":
        if v:
            v.pop()
        else:
            v.append("x")
    elif op == "wrap":
        parent[key] = [v]
    elif op == "unknown-key":
        v["zz_unknown"] = 1
    return f"{op} {'/'.join(map(str, path))}"


class Fixture:
    """A private copy of the golden repository whose files can be edited and
    put back between trials."""

    def __init__(self, root, fmt: str = "format-v3"):
        self.path = os.path.join(str(root), "repo")
        self.v1 = fmt == "format-v1"
        shutil.copytree(os.path.join(HERE, fmt), self.path)
        exp = json.load(open(os.path.join(self.path, "expected.json")))
        self.vid = exp["tags"]["v1"]          # the version under test (it has a parent)
        self.nranks = exp["nranks"]
        self.files = {rel: open(self.abs(rel), "rb").read() for rel in self._rels()}
        repo = vlcc.Repository(self.path)
        self.providers = sorted(repo.resolve(self.vid).providers)
        self.baseline = {name: self._read_all(repo, name) for name in self.providers}

    def abs(self, rel):
        return os.path.join(self.path, *rel.split("/"))

    def _rels(self):
        yield f"versions/{self.vid}.json"
        if not self.v1:
            yield f"data/{self.vid}/ranks.bin"
        for r in range(self.nranks):
            yield f"data/{self.vid}/r{r}.idx.json"

    def put_back(self):
        for rel, raw in self.files.items():
            with open(self.abs(rel), "wb") as f:
                f.write(raw)

    def load(self, rel):
        return json.loads(self.files[rel])

    def write(self, rel, doc) -> bytes:
        raw = seal(doc)
        with open(self.abs(rel), "wb") as f:
            f.write(raw)
        return raw

    def edit_manifest(self, rng) -> str:
        doc = self.load(f"versions/{self.vid}.json")
        what = _mutate(doc, rng)
        self.write(f"versions/{self.vid}.json", doc)
        return "manifest: " + what

    def edit_index(self, rng) -> str:
        """Edit one rank index and re-seal the chain of checksums above it."""
        r = rng.randrange(self.nranks)
        rel = f"data/{self.vid}/r{r}.idx.json"
        idx = self.load(rel)
        what = _mutate(idx, rng)
        raw = self.write(rel, idx)
        m = self.load(f"versions/{self.vid}.json")
        if self.v1:      # format 1: the manifest lists the index checksums
            m["ranks"][r]["index_checksum"] = chunk_hash(raw)
            self.write(f"versions/{self.vid}.json", m)
            return f"index r{r}: " + what
        table = bytearray(self.files[f"data/{self.vid}/ranks.bin"])
        table[16 * r:16 * r + 16] = bytes.fromhex(chunk_hash(raw))
        with open(self.abs(f"data/{self.vid}/ranks.bin"), "wb") as f:
            f.write(table)
        m["ranks"]["checksum"] = chunk_hash(bytes(table))
        self.write(f"versions/{self.vid}.json", m)
        return f"index r{r}: " + what

    def _read_all(self, repo, name):
        # the fixtures of formats 1-3 store pickled values: trusted here (what is
        # tested is damaged metadata; refusing pickles is tests/repo/test_values.py)
        e = repo.resolve(self.vid).providers.get(name)
        if e is None:
            return repo.read(self.vid, name)     # MissingProviderError
        if e["kind"] == "derived":
            return None
        if e["kind"] == "distributed":
            return [repo.read(self.vid, name)]
        return [repo.read(self.vid, name, rank=r, allow_pickle=True) for r in range(self.nranks)]

    def exercise(self) -> str:
        """Open, list, read every provider, verify: 'ok' or the error class
        name of the first clear error; raises anything else."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            repo = vlcc.Repository(self.path)
            listed = {v.id for v in repo.log()}          # never fails for one bad manifest
            repo.log("exp")
        if self.vid not in listed:
            assert any(self.vid in str(w.message) for w in caught), "skipped without a warning"
        outcome = "ok"
        try:
            repo.resolve(self.vid)
            for name in self.providers:
                try:
                    got = self._read_all(repo, name)
                except MissingProviderError:
                    continue                     # the edit removed it: a well-formed manifest
                except VlccError as exc:
                    if "derived" in str(exc) and not isinstance(exc, CorruptionError):
                        continue                 # an edit turned it into a recipe
                    raise
                if got is not None and self.baseline[name] is not None:
                    assert _same(got, self.baseline[name]), f"{name}: wrong data, no error"
            repo.verify(self.vid)
        except CLEAR as exc:
            outcome = type(exc).__name__
            assert self.vid in str(exc) or "manifest" in str(exc) or "index" in str(exc), exc
        return outcome

    def restore(self) -> str:
        """A collective restore (2 → 1 ranks) into registered arrays: bit-exact
        or a clear error (a changed recipe or shape is the provider's error)."""
        from mpi4py import MPI
        u = np.zeros((6, 5))
        u32 = np.zeros((6, 5), np.float32)
        got = {}
        outcome = "ok"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ck = vlcc.Checkpointer(self.path, MPI.COMM_SELF, branch="main")
        with ck:
            ck.register("heat/u", u, global_shape=(6, 5), offset=(0, 0))
            ck.register("step", vlcc.ValueProvider(lambda: 0, lambda v: got.update(step=v)))
            ck.register_derived("u32", lambda a: a.astype(np.float32), ["heat/u"],
                                recipe={"op": "astype", "dtype": "float32"}, target=u32)
            try:
                ck.restore(self.vid, strict=False, allow_pickle=True)
            except CLEAR + (vlcc.ProviderError,) as exc:
                return type(exc).__name__
        assert u.tobytes() == self.baseline["heat/u"][0].tobytes(), "heat/u: wrong data, no error"
        assert got.get("step", self.baseline["step"][0]) == self.baseline["step"][0], "step: wrong"
        assert u32.tobytes() == u.astype(np.float32).tobytes()
        return outcome


def _same(a, b) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and x.dtype == y.dtype
                    and x.shape == y.shape and x.tobytes() == y.tobytes()):
                return False
        elif x != y:
            return False
    return True


@pytest.mark.parametrize("fmt,target,trials", [("format-v3", "manifest", TRIALS // 2),
                                               ("format-v3", "index", TRIALS // 2),
                                               ("format-v2", "manifest", TRIALS // 8),
                                               ("format-v2", "index", TRIALS // 8),
                                               ("format-v1", "manifest", TRIALS // 8),
                                               ("format-v1", "index", TRIALS // 8)])
def test_malformed_but_sealed_gives_corruption_error(tmp_path, fmt, target, trials):
    fx = Fixture(tmp_path, fmt)
    counts: dict[str, int] = {}
    leaks = []
    for seed in range(trials):
        rng = random.Random(seed * 2 + (target == "index"))
        what = fx.edit_manifest(rng) if target == "manifest" else fx.edit_index(rng)
        try:
            out = fx.exercise()
        except AssertionError as exc:
            leaks.append(f"seed {seed}: {what}: {exc}")
            out = "wrong"
        except Exception as exc:   # noqa: BLE001 - what this test hunts
            leaks.append(f"seed {seed}: {what}: {type(exc).__name__}: {exc}")
            out = "leak"
        counts[out] = counts.get(out, 0) + 1
        if seed % 4 == 0:   # also through a Checkpointer (fewer: it costs more)
            try:
                fx.restore()
            except AssertionError as exc:
                leaks.append(f"seed {seed}: {what}: restore: {exc}")
            except Exception as exc:   # noqa: BLE001
                leaks.append(f"seed {seed}: {what}: restore: {type(exc).__name__}: {exc}")
        fx.put_back()
    print(f"{fmt} {target}: {counts}")
    assert not leaks, f"{len(leaks)} of {trials} edits:\n" + "\n".join(leaks)
    assert counts.get("CorruptionError", 0) >= trials // 2   # the sweep really damages things


def test_damaged_manifest_is_skipped_by_log_and_open(tmp_path):
    """One malformed (but sealed) manifest: log() and the catalog skip it with
    a warning naming the file, a Checkpointer still opens the repository, and
    restoring that version raises CorruptionError naming the file and field."""
    from mpi4py import MPI
    fx = Fixture(tmp_path)
    doc = fx.load(f"versions/{fx.vid}.json")
    doc["providers"]["heat/u"]["global_shape"] = "six by five"
    fx.write(f"versions/{fx.vid}.json", doc)
    repo = vlcc.Repository(fx.path)
    with pytest.warns(UserWarning, match=f"{fx.vid}.json"):
        ids = [v.id for v in repo.log()]
    assert fx.vid not in ids and len(ids) == 2
    with pytest.warns(UserWarning, match=fx.vid):
        lineage = [v.id for v in repo.log("exp")]
    assert lineage and fx.vid not in lineage
    with pytest.raises(CorruptionError, match=r"global_shape.*expected a list"):
        repo.resolve(fx.vid)
    u = np.zeros((6, 5))
    with pytest.warns(UserWarning):
        ck = vlcc.Checkpointer(fx.path, MPI.COMM_SELF, branch="exp")
    with ck:
        ck.register("heat/u", u, global_shape=(6, 5), offset=(0, 0))
        with pytest.raises(CorruptionError, match=f"{fx.vid}.json"):
            ck.restore(fx.vid, strict=False)
        with pytest.warns(UserWarning):
            assert fx.vid not in {v.id for v in ck.log()}
