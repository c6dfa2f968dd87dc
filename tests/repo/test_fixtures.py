"""Golden repositories: every format version ever written must keep reading
bit-exact (tests/fixtures/format-vN, written by tests/fixtures/make_fixture.py
with the code of that version and never rewritten)."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

import vlcc
from mpi_helpers import load_module
from conftest import TESTS_DIR

HERE = os.path.join(TESTS_DIR, "fixtures")
FIXTURES = sorted(d for d in os.listdir(HERE) if d.startswith("format-v"))


def _maker():
    return load_module(os.path.join(HERE, "make_fixture.py"), "make_fixture")


@pytest.fixture(params=FIXTURES)
def fixture_repo(request, tmp_path):
    """A private copy (readers may create lock files; the golden bytes stay untouched)."""
    dst = tmp_path / request.param
    shutil.copytree(os.path.join(HERE, request.param), dst)
    with open(dst / "expected.json") as f:
        return str(dst), json.load(f)


def test_fixtures_exist():
    assert {"format-v1", "format-v2", "format-v3", "format-v4"} <= set(FIXTURES)


def test_format_v4_fixture_has_node_files_and_safe_values():
    """format-v4 (docs/format.md 3.4, 3.5): the two ranks of the fixture's one
    node share one BP5 directory and one index per version, and its values
    are in the safe encoding (read without allow_pickle)."""
    root = os.path.join(HERE, "format-v4")
    repo = vlcc.Repository(root)
    for v in repo.log():
        assert v.manifest["vlcc_manifest"] == 4 and v.nranks == 2
        files = sorted(os.listdir(os.path.join(root, "data", v.id)))
        assert files == ["n0.bp", "n0.idx.json", "ranks.bin"], files
        kinds = {n: p.get("dtype") for n, p in v.manifest["providers"].items() if p.get("kind") == "value"}
        assert kinds and set(kinds.values()) == {"vlcc-value"}, kinds
        repo.read(v, "step")          # no UnsafeValueError: nothing pickled


def test_format_v3_fixture_is_tiled():
    """format-v3 stores heat/u on the global tile grid (docs/format.md, 3.3):
    the pieces of each rank's block, in tile-major order, one chunk each."""
    from vlcc.layout.tiles import piece_bounds, pieces, tile_shape
    mk = _maker()
    repo = vlcc.Repository(os.path.join(HERE, "format-v3"))
    for v in repo.log():
        assert v.manifest["vlcc_manifest"] == 3
        for r in range(v.nranks):
            with open(os.path.join(HERE, "format-v3", "data", v.id, f"r{r}.idx.json")) as f:
                leaf = json.load(f)["leaves"]["heat/u"]
            tile = tile_shape(mk.GLOBAL, 8, v.run["chunk_size"])
            assert leaf["tile"] == list(tile)
            ps = pieces(leaf["offset"], leaf["shape"], tile)
            assert len(ps) > 1
            assert [c[4] for c in leaf["chunks"]] == [n for _s, n in piece_bounds(ps, 8)]


def test_fixture_reads_bit_exact(fixture_repo):
    path, exp = fixture_repo
    mk = _maker()
    repo = vlcc.Repository(path)
    assert repo.tags() == exp["tags"]
    assert repo.branches() == exp["branches"]
    ids = [v["id"] for v in exp["versions"]]
    assert [v.id for v in repo.log("main")] == ids[1::-1]
    assert [v.id for v in repo.log("exp")] == [ids[2], ids[1], ids[0]]
    for e in exp["versions"]:
        v = repo.resolve(e["id"])
        k = e["k"]
        assert (v.step, v.branch, v.parent, v.message, v.attrs) == (e["step"], e["branch"], e["parent"],
                                                                    e["message"], {"k": k})
        u = repo.read(v, "heat/u")
        assert u.dtype == np.float64 and u.tobytes() == mk.u_global(k).tobytes()
        for r in range(exp["nranks"]):
            assert repo.read(v, "heat/rank_ids", rank=r).tobytes() == mk.rank_ids(r, k).tobytes()
        assert _value(repo, v, "step") == 10 * k
        p = mk.params(k)
        assert repo.read(v, "params/a").tobytes() == p["a"].tobytes()
        assert repo.read(v, "params/b").tobytes() == p["b"].tobytes()
        assert _value(repo, v, "params/name") == p["name"]
        assert v.providers["u32"]["kind"] == "derived"
    assert repo.verify()["versions"] == 3


def _value(repo, v, name):
    """Formats 1-3 stored values as pickles: refused unless the reader opts in
    (docs/format.md, threat model); format 4 stores them safely."""
    if v.providers[name]["dtype"] == "pickle":
        with pytest.raises(vlcc.UnsafeValueError, match="pickle.*allow_pickle=True"):
            repo.read(v, name)
        return repo.read(v, name, allow_pickle=True)
    return repo.read(v, name)


def test_fixture_restores_on_one_rank(fixture_repo):
    """N→M (2 → 1) restore of the distributed array, the derived leaf recomputed."""
    from mpi4py import MPI
    path, exp = fixture_repo
    mk = _maker()
    u = np.zeros(mk.GLOBAL)
    u32 = np.zeros(mk.GLOBAL, np.float32)
    got = {}
    with vlcc.Checkpointer(path, MPI.COMM_SELF, branch="main") as ck:
        ck.register("heat/u", u, global_shape=mk.GLOBAL, offset=(0, 0))
        ck.register("step", vlcc.ValueProvider(lambda: 0, lambda s: got.update(step=s)))
        ck.register_derived("u32", lambda a: a.astype(np.float32), ["heat/u"],
                            recipe={"op": "astype", "dtype": "float32"}, target=u32)
        if ck.repository.resolve("tag:v1").providers["step"]["dtype"] == "pickle":
            with pytest.raises(vlcc.UnsafeValueError, match="'step'.*pickle"):
                ck.restore("tag:v1", strict=False)
            assert not got and not u.any()      # refused before anything was modified
        v = ck.restore("tag:v1", strict=False, allow_pickle=True)
    assert v.id == exp["tags"]["v1"]
    assert u.tobytes() == mk.u_global(1).tobytes()
    assert u32.tobytes() == mk.u_global(1).astype(np.float32).tobytes()
    assert got["step"] == 10
