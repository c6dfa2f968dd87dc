"""VeloC's memory-based API on libvlcc (include/veloc.h): the VeloC-style heat example
checkpoints, is SIGKILLed from outside mid-run and restarts on another rank count
(VELOC_Mem_protect_dist) or the same one (plain VELOC_Mem_protect), bit-exact vs an
uninterrupted run; VELOC_Restart_test semantics; async mode; error cases."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

import vlcc
from capi_helpers import MPIEXEC, ROOT, build_c, clean_env, mpirun

NY, NX, STEPS, EVERY = 40, 24, 60, 10


@pytest.fixture(scope="module")
def heat(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("heat_veloc")
    return build_c(ROOT / "examples" / "veloc" / "heat_veloc.c", d / "heat_veloc")


def config(d: Path, mode="sync", **extra) -> Path:
    cfg = d / f"veloc-{mode}.cfg"
    lines = ["# VeloC configuration, read by vlcc", f"persistent = {d / 'repo'}",
             f"scratch = {d / 'scratch'}", f"mode = {mode}"]
    lines += [f"{k} = {v}" for k, v in extra.items()]
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def args(cfg, *extra):
    return [cfg, "--ny", NY, "--nx", NX, "--steps", STEPS, "--every", EVERY, *extra]


def field(path) -> np.ndarray:
    return np.fromfile(path, dtype=np.float64).reshape(NY, NX)


def bitexact(a, b) -> bool:
    return a.shape == b.shape and np.array_equal(a.view(np.uint64), b.view(np.uint64))


def test_veloc_symbols_exported_by_libvlcc():
    from capi_helpers import ensure_lib, run
    out = ensure_lib()
    syms = run(["nm", "-D", "--defined-only", out / "lib" / "libvlcc.so"], env=None).stdout
    for f in ("VELOC_Init", "VELOC_Finalize", "VELOC_Mem_protect", "VELOC_Mem_protect_dist",
              "VELOC_Mem_unprotect", "VELOC_Route_file", "VELOC_Checkpoint_begin",
              "VELOC_Checkpoint_selective", "VELOC_Checkpoint_mem", "VELOC_Checkpoint_end",
              "VELOC_Checkpoint_wait", "VELOC_Checkpoint", "VELOC_Restart_test",
              "VELOC_Restart_begin", "VELOC_Recover_selective", "VELOC_Recover_mem",
              "VELOC_Recover_size", "VELOC_Restart_end", "VELOC_Restart"):
        assert f" T {f}\n" in syms + "\n", f"{f} not exported"
    assert (out / "include" / "veloc.h").exists()


@pytest.fixture(scope="module")
def reference(heat, tmp_path_factory) -> np.ndarray:
    d = tmp_path_factory.mktemp("heat_veloc_ref")
    mpirun(2, heat, *args(config(d), "--out", d / "full.bin"))
    return field(d / "full.bin")


def run_and_kill(n: int, heat, cfg, *extra, timeout=300) -> str:
    """Run until rank 0 reports it hangs after the step given by --hang-at, then SIGKILL the
    whole job (mpiexec and every rank) from outside."""
    p = subprocess.Popen([MPIEXEC, "-n", str(n), str(heat), *map(str, args(cfg, *extra))],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env=clean_env(), start_new_session=True)
    out = []
    try:
        import selectors
        sel = selectors.DefaultSelector()
        sel.register(p.stdout, selectors.EVENT_READ)
        import time
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not sel.select(timeout=1.0):
                if p.poll() is not None:
                    break
                continue
            line = p.stdout.readline()
            if not line:
                break
            out.append(line)
            if "hanging at step" in line:
                break
        else:
            raise AssertionError(f"no 'hanging at step' within {timeout}s:\n{''.join(out)}")
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait(timeout=60)
        p.stdout.close()
    text = "".join(out)
    assert "hanging at step" in text, f"the run ended before it could be killed:\n{text}"
    return text


@pytest.mark.parametrize("n_first,n_restart", [(2, 3), (3, 2)])
def test_veloc_heat_killed_restarts_nm_with_dist_extension(heat, reference, tmp_path, n_first,
                                                           n_restart):
    cfg = config(tmp_path)
    run_and_kill(n_first, heat, cfg, "--hang-at", 35)
    repo = vlcc.Repository(tmp_path / "repo")
    log = repo.log("heat")
    assert [v.step for v in log] == [30, 20, 10]
    assert all(v.nranks == n_first for v in log)
    p = mpirun(n_restart, heat, *args(cfg, "--out", tmp_path / "re.bin"))
    assert f"restarted from version 30 at step 30 on {n_restart} ranks" in p.stdout
    assert bitexact(field(tmp_path / "re.bin"), reference)
    log = vlcc.Repository(tmp_path / "repo").log("heat")
    assert [v.step for v in log] == [60, 50, 40, 30, 20, 10], "lineage continues across restart"
    assert log[0].nranks == n_restart
    # The distributed region is a global array to Python.
    assert bitexact(vlcc.Repository(tmp_path / "repo").read(log[0], "veloc/0"), reference)


def test_veloc_heat_plain_mem_protect_same_rank_count(heat, reference, tmp_path):
    cfg = config(tmp_path)
    run_and_kill(2, heat, cfg, "--dist", 0, "--hang-at", 25)
    assert [v.step for v in vlcc.Repository(tmp_path / "repo").log("heat")] == [20, 10]
    # Plain per-rank regions cannot move to another rank count: a clear error, nothing written.
    bad = mpirun(3, heat, *args(cfg, "--dist", 0), check=False)
    assert bad.returncode != 0
    assert "VELOC_Mem_protect_dist" in bad.stderr and "cannot be restored on 3 ranks" in bad.stderr
    assert [v.step for v in vlcc.Repository(tmp_path / "repo").log("heat")] == [20, 10]
    p = mpirun(2, heat, *args(cfg, "--dist", 0, "--out", tmp_path / "re.bin"))
    assert "restarted from version 20" in p.stdout
    assert bitexact(field(tmp_path / "re.bin"), reference)


def test_veloc_heat_async_mode(heat, reference, tmp_path):
    """mode = async: no backend daemon; every checkpoint is committed by VELOC_Finalize
    (or earlier), the result is the same and the scratch tier is cleaned up."""
    cfg = config(tmp_path, "async", memory_budget="64MiB")
    mpirun(2, heat, *args(cfg, "--out", tmp_path / "full.bin"))
    assert bitexact(field(tmp_path / "full.bin"), reference)
    log = vlcc.Repository(tmp_path / "repo").log("heat")
    assert [v.step for v in log] == [60, 50, 40, 30, 20, 10]
    assert all(v.manifest["run"]["mode"] == "async" for v in log)
    vlcc.Repository(tmp_path / "repo").verify()
    leftovers = [p for p in (tmp_path / "scratch").rglob("*") if p.is_file()] \
        if (tmp_path / "scratch").exists() else []
    assert leftovers == []
    # Restart from the async-written repository on another rank count.
    p = mpirun(3, heat, *args(cfg, "--steps", STEPS, "--out", tmp_path / "again.bin"))
    assert "restarted from version 60" in p.stdout
    assert bitexact(field(tmp_path / "again.bin"), reference)


SEMANTICS_C = r"""
#include <stdio.h>
#include <string.h>
#include <veloc.h>
static int rank;
static void report(const char *what, int rc) {
    if (rank == 0) printf("%s|%d|%s\n", what, rc, rc == VELOC_FAILURE ? vlcc_last_error() : "");
    fflush(stdout);
}
int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    const char *good = argv[1], *nofile = argv[2], *nopersist = argv[3], *badkey = argv[4];
    double a[4], big[8], small[2];
    int it = 0;
    report("protect_before_init", VELOC_Mem_protect(0, a, 4, sizeof(double)));
    report("checkpoint_before_init", VELOC_Checkpoint("run", 1));
    report("init_missing_file", VELOC_Init(MPI_COMM_WORLD, nofile));
    report("init_no_persistent", VELOC_Init(MPI_COMM_WORLD, nopersist));
    report("init_unknown_key", VELOC_Init(MPI_COMM_WORLD, badkey));
    report("init", VELOC_Init(MPI_COMM_WORLD, good));
    report("init_twice", VELOC_Init(MPI_COMM_WORLD, good));
    report("test_empty", VELOC_Restart_test("run", 0));
    report("checkpoint_nothing_protected", VELOC_Checkpoint("run", 1));
    report("protect_null", VELOC_Mem_protect(0, NULL, 4, sizeof(double)));
    report("protect", VELOC_Mem_protect(0, a, 4, sizeof(double)));
    report("protect_it", VELOC_Mem_protect(7, &it, 1, sizeof(int)));
    report("unprotect_unknown", VELOC_Mem_unprotect(3));
    report("checkpoint_bad_name", VELOC_Checkpoint("bad name", 1));
    report("checkpoint_negative", VELOC_Checkpoint("run", -2));
    report("end_without_begin", VELOC_Checkpoint_end(1));
    int versions[] = {0, 5, 10, 20};
    for (int k = 0; k < 4; k++) {
        it = versions[k];
        for (int i = 0; i < 4; i++) a[i] = 1000 * rank + 10 * versions[k] + i;
        char w[32]; snprintf(w, sizeof w, "checkpoint_%d", versions[k]);
        report(w, VELOC_Checkpoint("run", versions[k]));
    }
    /* Checkpoint_end(0): nothing committed. */
    report("begin_30", VELOC_Checkpoint_begin("run", 30));
    report("mem_30", VELOC_Checkpoint_mem());
    report("end_30_discard", VELOC_Checkpoint_end(0));
    /* Selective checkpoint under another name. */
    int only_a[1] = {0};
    report("begin_other", VELOC_Checkpoint_begin("other.run", 3));
    report("selective_other", VELOC_Checkpoint_selective(VELOC_CKPT_SOME, only_a, 1));
    report("end_other", VELOC_Checkpoint_end(1));
    report("wait", VELOC_Checkpoint_wait());
    report("test_0", VELOC_Restart_test("run", 0));
    report("test_20", VELOC_Restart_test("run", 20));
    report("test_11", VELOC_Restart_test("run", 11));
    report("test_5", VELOC_Restart_test("run", 5));
    report("test_1", VELOC_Restart_test("run", 1));
    report("test_31", VELOC_Restart_test("run", 31));
    report("test_other", VELOC_Restart_test("other.run", 0));
    report("test_unknown", VELOC_Restart_test("nosuch", 0));
    report("test_bad_name", VELOC_Restart_test("bad/name", 0));
    report("test_negative", VELOC_Restart_test("run", -1));
    report("restart_missing", VELOC_Restart("run", 7));
    char routed[VELOC_MAX_NAME];
    report("route_file", VELOC_Route_file("state.dat", routed));
    /* Recover_size and selective recovery of version 5. */
    report("restart_begin_5", VELOC_Restart_begin("run", 5));
    report("size_0", VELOC_Recover_size(0));
    report("size_7", VELOC_Recover_size(7));
    report("size_9", VELOC_Recover_size(9));
    report("unprotect_7", VELOC_Mem_unprotect(7));
    report("recover_all_unprotected", VELOC_Recover_mem());
    for (int i = 0; i < 4; i++) a[i] = -1;
    it = -1;
    report("recover_some", VELOC_Recover_selective(VELOC_RECOVER_SOME, only_a, 1));
    int ok = it == -1;
    for (int i = 0; i < 4; i++) ok &= a[i] == 1000 * rank + 50 + i;
    report("restart_end", VELOC_Restart_end(1));
    /* A region too small for the saved bytes, then a bigger one. */
    report("protect_small", VELOC_Mem_protect(0, small, 2, sizeof(double)));
    report("protect_it_again", VELOC_Mem_protect(7, &it, 1, sizeof(int)));
    report("restart_small", VELOC_Restart("run", 10));
    report("protect_big", VELOC_Mem_protect(0, big, 8, sizeof(double)));
    for (int i = 0; i < 8; i++) big[i] = -7;
    report("restart_10_big", VELOC_Restart("run", 10));
    ok &= it == 10 && big[4] == -7;
    for (int i = 0; i < 4; i++) ok &= big[i] == 1000 * rank + 100 + i;
    /* Continue from version 10: the next version's parent is version 10. */
    report("checkpoint_15", VELOC_Checkpoint("run", 15));
    report("test_after_branching", VELOC_Restart_test("run", 0));
    int all; MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
    if (rank == 0) printf("values_ok|%d|\n", all);
    report("finalize", VELOC_Finalize(1));
    report("checkpoint_after_finalize", VELOC_Checkpoint("run", 40));
    MPI_Finalize();
    return 0;
}
"""

S, F = "0", "-1"
EXPECT = {
    "protect_before_init": F, "checkpoint_before_init": F, "init_missing_file": F,
    "init_no_persistent": F, "init_unknown_key": F, "init": S, "init_twice": F,
    "test_empty": F, "checkpoint_nothing_protected": F, "protect_null": F, "protect": S,
    "protect_it": S, "unprotect_unknown": F, "checkpoint_bad_name": F, "checkpoint_negative": F,
    "end_without_begin": F, "checkpoint_0": S, "checkpoint_5": S, "checkpoint_10": S,
    "checkpoint_20": S, "begin_30": S, "mem_30": S, "end_30_discard": S, "begin_other": S,
    "selective_other": S, "end_other": S, "wait": S,
    "test_0": "20", "test_20": "10", "test_11": "10", "test_5": "0", "test_1": "0",
    "test_31": "20", "test_other": "3", "test_unknown": F, "test_bad_name": F,
    "test_negative": F, "restart_missing": F, "route_file": F, "restart_begin_5": S,
    "size_0": "32", "size_7": "4", "size_9": F, "unprotect_7": S,
    "recover_all_unprotected": F, "recover_some": S, "restart_end": S, "protect_small": S,
    "protect_it_again": S, "restart_small": F, "protect_big": S, "restart_10_big": S,
    "checkpoint_15": S, "test_after_branching": "15", "values_ok": "1", "finalize": S,
    "checkpoint_after_finalize": F,
}


@pytest.mark.parametrize("n", [2, 3])
def test_veloc_semantics_and_errors(tmp_path, n):
    d = tmp_path
    (d / "sem.c").write_text(SEMANTICS_C)
    prog = build_c(d / "sem.c", d / "sem")
    good = config(d, "sync", max_versions=4)        # a VeloC key vlcc ignores
    nopersist = d / "nopersist.cfg"
    nopersist.write_text("scratch = /tmp\nmode = sync\n")
    badkey = d / "badkey.cfg"
    badkey.write_text(f"persistent = {d / 'repo'}\ncolour = blue\n")
    p = mpirun(n, prog, good, d / "missing.cfg", nopersist, badkey)
    rows = {}
    for line in p.stdout.splitlines():
        k, rc, msg = line.split("|", 2)
        rows[k] = (rc, msg)
    assert {k: rows[k][0] for k in EXPECT if k in rows} == EXPECT
    msg = {k: v[1] for k, v in rows.items()}
    assert "VELOC_Init first" in msg["protect_before_init"]
    assert "missing.cfg" in msg["init_missing_file"]
    assert "persistent" in msg["init_no_persistent"]
    assert "colour" in msg["init_unknown_key"]
    assert "already initialized" in msg["init_twice"]
    assert "no protected memory region" in msg["checkpoint_nothing_protected"]
    assert "[A-Za-z0-9_.]" in msg["checkpoint_bad_name"]
    assert "no version 7" in msg["restart_missing"]
    assert "file-based checkpoints are not supported" in msg["route_file"]
    assert "region 7" in msg["recover_all_unprotected"] and "not protected" in msg["recover_all_unprotected"]
    assert "too small" in msg["restart_small"]
    assert "VELOC (vlcc): VELOC_Route_file failed" in p.stderr
    repo = vlcc.Repository(d / "repo")
    log = repo.log("run")
    assert [v.step for v in log] == [15, 10, 5, 0], "restart from 10 then checkpoint 15"
    assert 20 in [v.step for v in repo.log()], "version 20 stays addressable"
    assert 30 not in [v.step for v in repo.log()], "Checkpoint_end(0) committed nothing"
    other = repo.log("other.run")      # a new name starts a branch at the current version
    assert [(v.branch, v.step) for v in other][:2] == [("other.run", 3), ("run", 20)]
    assert set(other[0].providers) == {"veloc/0"}, "VELOC_CKPT_SOME stored region 0 only"
    v5 = [v for v in log if v.step == 5][0]
    for r in range(n):
        got = repo.read(v5, "veloc/0", rank=r).view(np.float64)
        assert np.array_equal(got, 1000 * r + 50 + np.arange(4))
    assert repo.read(v5, "veloc/7").view(np.int32).tolist() == [5]   # same on every rank


ASYNC_C = r"""
#include <stdio.h>
#include <unistd.h>
#include <vlcc.h>
int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size; MPI_Comm_rank(MPI_COMM_WORLD, &rank); MPI_Comm_size(MPI_COMM_WORLD, &size);
    char opts[1024];
    int rc = vlcc_init(argv[1], MPI_COMM_WORLD, "mode=fast");
    if (rank == 0) printf("bad_mode|%s|%s\n", vlcc_strerror(rc), vlcc_last_error());
    rc = vlcc_init(argv[1], MPI_COMM_WORLD, "mode=async;memory_budget=lots");
    if (rank == 0) printf("bad_budget|%s|%s\n", vlcc_strerror(rc), vlcc_last_error());
    snprintf(opts, sizeof opts, "mode=async;local_dir=%s;memory_budget=32MiB", argv[2]);
    rc = vlcc_init(argv[1], MPI_COMM_WORLD, opts);
    if (rc) { fprintf(stderr, "init: %s\n", vlcc_last_error()); MPI_Abort(MPI_COMM_WORLD, 2); }
    enum { N = 100000 };
    static double x[N];
    int64_t ls[1] = {N}, gs[1] = {(int64_t)N * size}, off[1] = {(int64_t)N * rank};
    if (vlcc_register("x", x, VLCC_FLOAT64, 1, ls, gs, off, 0)) MPI_Abort(MPI_COMM_WORLD, 3);
    for (int v = 1; v <= 5; v++) {
        for (int i = 0; i < N; i++) x[i] = v * 1e6 + (double)N * rank + i;
        char id[VLCC_ID_MAX];
        if (vlcc_checkpoint(v, "async", id, sizeof id)) {
            fprintf(stderr, "checkpoint: %s\n", vlcc_last_error()); MPI_Abort(MPI_COMM_WORLD, 4);
        }
        if (rank == 0) printf("id|%d|%s\n", v, id);
    }
    rc = vlcc_wait();
    if (rank == 0) { printf("waited|%s|\n", vlcc_strerror(rc)); fflush(stdout); }
    for (;;) pause();   /* the test reads the repository now, then kills the job */
}
"""


def test_vlcc_async_mode_and_vlcc_wait_from_c(tmp_path):
    """vlcc_init("mode=async;local_dir=...;memory_budget=...") + vlcc_wait: after vlcc_wait
    returns, every version is committed (checked from Python while the C job still runs,
    so it is vlcc_wait and not vlcc_finalize that committed them)."""
    (tmp_path / "a.c").write_text(ASYNC_C)
    prog = build_c(tmp_path / "a.c", tmp_path / "a")
    n = 2
    p = subprocess.Popen([MPIEXEC, "-n", str(n), str(prog), str(tmp_path / "repo"),
                          str(tmp_path / "local")], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=clean_env(),
                         start_new_session=True)
    rows = {}
    try:
        import selectors
        import time
        sel = selectors.DefaultSelector()
        sel.register(p.stdout, selectors.EVENT_READ)
        end = time.monotonic() + 300
        while "waited" not in rows and time.monotonic() < end and p.poll() is None:
            if sel.select(timeout=1.0):
                line = p.stdout.readline()
                if not line:
                    break
                k, a, b = line.rstrip("\n").split("|", 2)
                rows.setdefault(k, []).append((a, b))
        assert "waited" in rows, f"no 'waited' line; stdout so far {rows}"
        assert rows["waited"] == [("VLCC_OK", "")]
        repo = vlcc.Repository(tmp_path / "repo")
        log = repo.log("main")
        assert [v.step for v in log] == [5, 4, 3, 2, 1]
        assert [v.id for v in reversed(log)] == [b for _, b in rows["id"]]
        assert all(v.manifest["run"]["mode"] == "async" for v in log)
        N = 100000
        for v in log:
            assert np.array_equal(repo.read(v, "x"), v.step * 1e6 + np.arange(N * n, dtype=np.float64))
        repo.verify()
        assert rows["bad_mode"][0][0] == "VLCC_EINVAL" and "mode='fast'" in rows["bad_mode"][0][1]
        assert rows["bad_budget"][0][0] == "VLCC_EINVAL" and "lots" in rows["bad_budget"][0][1]
        assert (tmp_path / "local").is_dir(), "local_dir option reached the checkpointer"
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait(timeout=60)
        p.stdout.close()
        p.stderr.close()
