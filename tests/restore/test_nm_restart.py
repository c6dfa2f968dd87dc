"""N→M restart: write on N ranks with one decomposition, restore on M ranks with
another, bit-exact, for N, M in {1, 2, 3} and 1-D/2-D/3-D arrays (the helper
script tests/scripts/nm_write_read.py runs under mpiexec; see its docstring)."""

from __future__ import annotations

import os

import numpy as np
import pytest

import vlcc
from mpi_helpers import load_module
from conftest import TESTS_DIR

SCRIPTS_DIR = os.path.join(TESTS_DIR, "scripts")
SCRIPT = "nm_write_read.py"


nm = load_module(os.path.join(SCRIPTS_DIR, SCRIPT), "nm_write_read")

# (N writers, M readers, write scheme, read scheme, chunk size in bytes); the
# grid of every (N, M) in {1,2,3}² × rows/cols/bisect is test_every_n_to_m_split
CASES = [
    (1, 1, "rows", "bisect", 64),
    (2, 3, "cols", "uneven", 64),
    (3, 1, "uneven", "cols", 64),
    (3, 2, "bisect", "rev", 64),
    (3, 3, "rows", "bisect", 64),
    (3, 3, "bisect", "uneven", 24),     # chunks smaller than a row of most arrays
    (2, 2, "rev", "bisect", 1 << 20),   # one chunk per block: whole-block reads
    (2, 3, "uneven", "rev", 40),
    (8, 3, "rev", "bisect", 40),        # 8 oversubscribed writers; irregular: a decomposition table
]


@pytest.mark.parametrize("n,m,wscheme,rscheme,chunk", CASES,
                         ids=[f"{n}to{m}-{w}-{r}-c{c}" for n, m, w, r, c in CASES])
def test_n_to_m_restart(tmp_path, mpirun, n, m, wscheme, rscheme, chunk):
    repo = str(tmp_path / "repo")
    out = mpirun(n, SCRIPT, "write", repo, wscheme, chunk)
    assert out.stdout.count("NM-OK write") == n
    # Half the cases restore straight into the arrays (atomic=False), half staged.
    out = mpirun(m, SCRIPT, "read", repo, rscheme, *(["direct"] if (n + m) % 2 else []))
    assert out.stdout.count("NM-OK read") == m, out.stdout + out.stderr

    # The stored version describes the writers' decomposition, and the global
    # arrays read without MPI equal the generating function.
    r = vlcc.Repository(repo)
    (v,) = r.log()
    assert v.nranks == n and v.run["chunk_size"] == chunk
    for name, (gshape, dtype) in nm.PROVIDERS.items():
        blocks = sorted((tuple(b["offset"]), tuple(b["shape"])) for b in v.decomposition[name])
        assert blocks == sorted(nm.boxes(wscheme, gshape, n)), name
        assert r.read(v, name).tobytes() == nm.global_data(gshape, dtype).tobytes(), name
    assert r.verify(v)["chunks"] > 0


@pytest.mark.parametrize("n", [1, 2, 3])
def test_every_n_to_m_split(tmp_path, mpirun, n):
    """Every array written on N ranks three times (scheme "all"): split by rows,
    by columns and into 2-D/3-D blocks (chunks on the global tile grid, many
    tiles per block); restored on every M in {1, 2, 3}, each copy with another
    split (rows → cols → bisect → rows): bit-exact (the script checks every
    rank's interior and halo, and Repository.read of the global arrays)."""
    repo = str(tmp_path / "repo")
    mpirun(n, SCRIPT, "write", repo, "all", 64)
    for m in (1, 2, 3):
        out = mpirun(m, SCRIPT, "read", repo, "all")
        assert out.stdout.count("NM-OK read") == m, out.stdout + out.stderr
    (v,) = vlcc.Repository(repo).log()
    assert v.nranks == n
    for prefix, wscheme, _r in nm.ALL:
        gshape = nm.PROVIDERS["grid/u3"][0]
        blocks = sorted((tuple(b["offset"]), tuple(b["shape"])) for b in v.decomposition[prefix + "grid/u3"])
        assert blocks == sorted(nm.boxes(wscheme, gshape, n))


@pytest.mark.parametrize("scheme", ["rows", "cols", "bisect", "uneven", "rev"])
@pytest.mark.parametrize("nprocs", [1, 2, 3, 5])
def test_decompositions_tile_the_global_array(scheme, nprocs):
    """The helper's decompositions are exact tilings (else the N→M test proves little)."""
    for gshape, _ in nm.PROVIDERS.values():
        cover = np.zeros(gshape, np.int32)
        bs = nm.boxes(scheme, gshape, nprocs)
        assert len(bs) == nprocs
        for off, shp in bs:
            cover[tuple(slice(o, o + s) for o, s in zip(off, shp))] += 1
        assert np.all(cover == 1), (scheme, gshape, bs)
    if scheme == "bisect" and nprocs >= 3:
        # Genuinely multi-dimensional: some block is cut along an axis other than 0.
        gshape = nm.PROVIDERS["grid/u2"][0]
        assert any(s[1] != gshape[1] for _, s in nm.boxes(scheme, gshape, nprocs))


def test_reader_detects_a_wrong_expectation(tmp_path, mpirun):
    """The read script can fail: a repository written from other data is rejected."""
    repo = str(tmp_path / "repo")
    mpirun(2, SCRIPT, "write", repo, "rows", 64)
    # Commit a second version on one rank whose u2 is all zeros: the newest
    # version no longer matches the generating function.
    from mpi4py import MPI
    with vlcc.Checkpointer(repo, comm=MPI.COMM_SELF) as ck:
        for name, (gshape, dtype) in nm.PROVIDERS.items():
            data = nm.global_data(gshape, dtype)
            if name == "grid/u2":
                data = np.zeros_like(data)
            ck.register(name, data, global_shape=gshape, offset=(0,) * len(gshape))
        ck.register("meta", vlcc.ValueProvider(get=lambda: nm.META))
        ck.register("weights", nm.replicated())
        ck.checkpoint(step=nm.META["step"], attrs={"nranks": 1})
    res = mpirun(2, SCRIPT, "read", repo, "cols", check=False)
    assert res.returncode != 0
    assert "grid/u2: interior differs" in res.stderr
