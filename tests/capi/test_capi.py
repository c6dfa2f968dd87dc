"""libvlcc from C: the heat example (checkpoint, SIGKILL, restart on another rank count,
bit-exact), data exchanged with Python both ways, and error codes."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import numpy as np
import pytest

import vlcc
from capi_helpers import ROOT, build_c, clean_env, mpirun, run, ensure_lib, BIN, MPIEXEC

NY, NX, STEPS, EVERY = 40, 24, 60, 10


@pytest.fixture(scope="module")
def heat(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("heat_c")
    return build_c(ROOT / "examples" / "heat" / "heat.c", d / "heat")


def heat_args(repo, *extra):
    return [repo, "--ny", NY, "--nx", NX, "--steps", STEPS, "--every", EVERY, *extra]


def read_field(path) -> np.ndarray:
    return np.fromfile(path, dtype=np.float64).reshape(NY, NX)


@pytest.fixture(scope="module")
def reference(heat, tmp_path_factory) -> np.ndarray:
    d = tmp_path_factory.mktemp("heat_ref")
    mpirun(2, heat, *heat_args(d / "repo", "--out", d / "full.bin"))
    return read_field(d / "full.bin")


def test_library_exports_and_rpath():
    out = ensure_lib()
    lib = out / "lib" / "libvlcc.so"
    syms = run(["nm", "-D", "--defined-only", lib], env=None).stdout
    for f in ("vlcc_init", "vlcc_init_f", "vlcc_register", "vlcc_register_ex", "vlcc_checkpoint",
              "vlcc_restore", "vlcc_query", "vlcc_branch", "vlcc_switch", "vlcc_tag", "vlcc_wait",
              "vlcc_finalize", "vlcc_last_error", "vlcc_strerror"):
        assert re.search(rf" T {f}$", syms, re.M), f"{f} not exported by {lib}"
    dyn = run(["readelf", "-d", lib], env=None).stdout
    assert "RUNPATH" in dyn or "RPATH" in dyn
    pc = (out / "pkgconfig" / "vlcc.pc").read_text()
    assert "-lvlcc" in pc and "Cflags:" in pc


@pytest.mark.parametrize("n_first,n_restart", [(2, 3), (3, 2)])
def test_heat_c_crash_restart_other_rank_count_bitexact(heat, reference, tmp_path, n_first, n_restart):
    repo = tmp_path / "repo"
    crashed = mpirun(n_first, heat, *heat_args(repo, "--crash-at", 35), check=False)
    assert crashed.returncode != 0, "the run was supposed to die by SIGKILL at step 35"
    r = vlcc.Repository(repo)
    log = r.log()
    assert [v.step for v in log] == [30, 20, 10], "versions up to the last checkpoint before the crash"
    assert all(v.nranks == n_first for v in log)
    p = mpirun(n_restart, heat, *heat_args(repo, "--out", tmp_path / "re.bin"))
    assert "restarted from version" in p.stdout and "at step 30" in p.stdout
    got = read_field(tmp_path / "re.bin")
    assert np.array_equal(got.view(np.uint64), reference.view(np.uint64)), "not bit-exact"
    log = vlcc.Repository(repo).log()
    assert log[0].step == STEPS and log[0].nranks == n_restart
    first_after = [v for v in log if v.step == 40][0]
    assert first_after.parent == [v for v in log if v.step == 30][0].id, "lineage across restart"
    # C-written data read from Python: the global array at the final version.
    assert np.array_equal(vlcc.Repository(repo).read(log[0], "heat/u"), reference)


PY_WRITER = r"""
import sys, numpy as np, vlcc
from mpi4py import MPI
comm = MPI.COMM_WORLD
src, dst, ny, nx = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
r = vlcc.Repository(src)
v = [v for v in r.log() if v.step == 30][0]
field = r.read(v, "heat/u")
n, k = comm.size, comm.rank
nyl = ny // n + (k < ny % n); y0 = k * (ny // n) + min(k, ny % n)
u = np.zeros((nyl + 2, nx + 2))
u[1:-1, 1:-1] = field[y0:y0 + nyl]
with vlcc.Checkpointer(dst, comm=comm) as ck:
    ck.register("heat/u", u, global_shape=(ny, nx), offset=(y0, 0), halo=1)
    ck.register("heat/step", np.array([30], dtype=np.int64))
    ck.checkpoint(step=30, message="written by Python")
"""


def test_python_written_version_restarts_c_program(heat, reference, tmp_path):
    """Both directions: C writes, Python reads the step-30 field and writes a new repository
    on 2 ranks, the C program restarts from it on 3 ranks and ends bit-exact."""
    src = tmp_path / "src"
    mpirun(2, heat, *heat_args(src, "--crash-at", 35), check=False)
    script = tmp_path / "writer.py"
    script.write_text(PY_WRITER)
    dst = tmp_path / "dst"
    mpirun(2, BIN / "python", script, src, dst, NY, NX, env=clean_env())
    p = mpirun(3, heat, *heat_args(dst, "--out", tmp_path / "re.bin"))
    assert "at step 30" in p.stdout
    assert np.array_equal(read_field(tmp_path / "re.bin"), reference)


ERRORS_C = r"""
#include <stdio.h>
#include <string.h>
#include <vlcc.h>
static int rank;
static void report(const char *what, int rc) {
    if (rank == 0) printf("%s|%d|%s|%s\n", what, rc, vlcc_strerror(rc), rc ? vlcc_last_error() : "");
    fflush(stdout);
}
int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    int size; MPI_Comm_size(MPI_COMM_WORLD, &size);
    double a[8] = {0}; float f[8] = {0};
    int64_t ls[1] = {8}, gs[1] = {8 * size}, off[1] = {8 * rank}, big[1] = {9 * size};
    char id[VLCC_ID_MAX], tiny[4];
    report("register_before_init", vlcc_register("x", a, VLCC_FLOAT64, 1, ls, gs, off, 0));
    report("checkpoint_before_init", vlcc_checkpoint(1, NULL, id, sizeof id));
    report("restore_before_init", vlcc_restore(NULL));
    report("finalize_before_init", vlcc_finalize());
    report("init_null_path", vlcc_init(NULL, MPI_COMM_WORLD, NULL));
    report("init_bad_option", vlcc_init(argv[1], MPI_COMM_WORLD, "colour=blue"));
    report("init", vlcc_init(argv[1], MPI_COMM_WORLD, "branch=main;chunk_size=4096"));
    report("init_twice", vlcc_init(argv[1], MPI_COMM_WORLD, NULL));
    report("checkpoint_nothing_registered", vlcc_checkpoint(1, NULL, id, sizeof id));
    report("register_null_data", vlcc_register("x", NULL, VLCC_FLOAT64, 1, ls, gs, off, 0));
    report("register_null_name", vlcc_register(NULL, a, VLCC_FLOAT64, 1, ls, gs, off, 0));
    report("register_null_shape", vlcc_register("x", a, VLCC_FLOAT64, 1, NULL, gs, off, 0));
    report("register_bad_dtype", vlcc_register("x", a, (vlcc_dtype)77, 1, ls, gs, off, 0));
    report("register_bad_name", vlcc_register("bad name!", a, VLCC_FLOAT64, 1, ls, gs, off, 0));
    int64_t small[1] = {4};
    report("register_outside", vlcc_register("x", a, VLCC_FLOAT64, 1, ls, small, off, 0));
    report("register", vlcc_register("x", a, VLCC_FLOAT64, 1, ls, gs, off, 0));
    report("register_duplicate", vlcc_register("x", a, VLCC_FLOAT64, 1, ls, gs, off, 0));
    for (int i = 0; i < 8; i++) a[i] = rank * 8 + i;
    report("checkpoint_tiny_id", vlcc_checkpoint(1, "first", tiny, sizeof tiny));
    report("checkpoint", vlcc_checkpoint(2, "second", id, sizeof id));
    int64_t step = 0;
    report("query_latest", vlcc_query("latest", NULL, 0, &step));
    if (rank == 0) printf("step|%lld\n", (long long)step);
    report("restore_unknown", vlcc_restore("no-such-version"));
    report("restore_unknown_tag", vlcc_restore("tag:nope"));
    report("query_unknown", vlcc_query("0123456789abcdef", id, sizeof id, NULL));
    report("tag", vlcc_tag("good", NULL));
    report("tag_again", vlcc_tag("good", NULL));
    report("branch", vlcc_branch("side", "tag:good"));
    report("switch_missing", vlcc_switch("nowhere", 0));
    /* dtype mismatch: same name, float32 buffer */
    report("unregister", vlcc_unregister("x"));
    report("unregister_again", vlcc_unregister("x"));
    report("register_f32", vlcc_register("x", f, VLCC_FLOAT32, 1, ls, gs, off, 0));
    report("restore_dtype_mismatch", vlcc_restore("tag:good"));
    vlcc_unregister("x");
    /* shape mismatch: other global shape */
    report("register_big", vlcc_register("x", a, VLCC_FLOAT64, 1, ls, big, off, 0));
    report("restore_shape_mismatch", vlcc_restore("tag:good"));
    vlcc_unregister("x");
    for (int i = 0; i < 8; i++) a[i] = -1;
    report("register_again", vlcc_register("x", a, VLCC_FLOAT64, 1, ls, gs, off, 0));
    report("restore_tag", vlcc_restore("tag:good"));
    int ok = 1; for (int i = 0; i < 8; i++) ok &= (a[i] == rank * 8 + i);
    int all; MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
    if (rank == 0) printf("restored_ok|%d\n", all);
    report("wait", vlcc_wait());
    report("finalize", vlcc_finalize());
    report("checkpoint_after_finalize", vlcc_checkpoint(3, NULL, id, sizeof id));
    MPI_Finalize();
    return 0;
}
"""

EXPECT = {
    "register_before_init": "VLCC_ESTATE", "checkpoint_before_init": "VLCC_ESTATE",
    "restore_before_init": "VLCC_ESTATE", "finalize_before_init": "VLCC_ESTATE",
    "init_null_path": "VLCC_EINVAL", "init_bad_option": "VLCC_EINVAL", "init": "VLCC_OK",
    "init_twice": "VLCC_ESTATE", "checkpoint_nothing_registered": "VLCC_EPROVIDER",
    "register_null_data": "VLCC_EINVAL", "register_null_name": "VLCC_EINVAL",
    "register_null_shape": "VLCC_EINVAL", "register_bad_dtype": "VLCC_EINVAL",
    "register_bad_name": "VLCC_EINVAL", "register": "VLCC_OK",
    "register_duplicate": "VLCC_EPROVIDER", "checkpoint_tiny_id": "VLCC_ETRUNC",
    "checkpoint": "VLCC_OK", "query_latest": "VLCC_OK", "restore_unknown": "VLCC_ENOTFOUND",
    "restore_unknown_tag": "VLCC_ENOTFOUND", "query_unknown": "VLCC_ENOTFOUND", "tag": "VLCC_OK",
    "tag_again": "VLCC_EEXISTS", "branch": "VLCC_OK", "switch_missing": "VLCC_ENOTFOUND",
    "unregister": "VLCC_OK", "unregister_again": "VLCC_EPROVIDER", "register_f32": "VLCC_OK",
    "restore_dtype_mismatch": "VLCC_EMISMATCH", "register_big": "VLCC_OK",
    "restore_shape_mismatch": "VLCC_EMISMATCH", "register_again": "VLCC_OK",
    "restore_tag": "VLCC_OK", "wait": "VLCC_OK", "finalize": "VLCC_OK",
    "checkpoint_after_finalize": "VLCC_ESTATE",
}


@pytest.fixture(scope="module")
def errors_prog(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("errors_c")
    (d / "errors.c").write_text(ERRORS_C)
    return build_c(d / "errors.c", d / "errors")


@pytest.mark.parametrize("n", [2, 3])
def test_error_codes_and_messages(errors_prog, tmp_path, n):
    p = mpirun(n, errors_prog, tmp_path / "repo")
    rows = {}
    for line in p.stdout.splitlines():
        parts = line.split("|", 3)
        rows[parts[0]] = parts[1:]
    got = {k: rows[k][1] for k in EXPECT if k in rows}
    assert got == EXPECT
    assert rows["register_outside"][1] == "VLCC_EINVAL"
    assert rows["restored_ok"] == ["1"]
    assert rows["step"] == ["2"]
    msg = {k: v[2] for k, v in rows.items() if len(v) > 2}
    assert "vlcc_init" in msg["register_before_init"]
    assert "no-such-version" in msg["restore_unknown"]
    assert "dtype mismatch" in msg["restore_dtype_mismatch"] and "float64" in msg["restore_dtype_mismatch"]
    assert "global shape mismatch" in msg["restore_shape_mismatch"]
    assert "data is NULL" in msg["register_null_data"]
    assert "colour" in msg["init_bad_option"]
    assert "already registered" in msg["register_duplicate"]
    # The truncated-id checkpoint still committed: 2 versions on main.
    assert [v.step for v in vlcc.Repository(tmp_path / "repo").log("main")] == [2, 1]


def test_init_failure_is_reported_not_hidden(errors_prog, tmp_path):
    """If vlcc's Python side cannot be imported, every call returns VLCC_EINIT with the
    traceback in vlcc_last_error() (never a silent 0)."""
    broken = tmp_path / "broken" / "vlcc"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('vlcc deliberately broken for a test')\n")
    p = mpirun(2, errors_prog, tmp_path / "repo",
               env=clean_env(PYTHONPATH=str(broken.parent)), check=False)
    rows = {l.split("|", 3)[0]: l.split("|", 3)[1:] for l in p.stdout.splitlines() if "|" in l}
    assert rows["register_before_init"][1] == "VLCC_EINIT"
    assert rows["init"][1] == "VLCC_EINIT"
    assert "could not import vlcc's Python side" in rows["init"][2]
    assert "Traceback" in p.stdout and "deliberately broken" in p.stdout   # the traceback follows
    assert not (tmp_path / "repo").exists()
