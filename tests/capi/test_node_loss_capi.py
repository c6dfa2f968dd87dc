"""The node-local tier's protection from C: vlcc_init's options string
(``redundancy=partner;persist=never``), a C program (MPI_Init: below
MPI_THREAD_MULTIPLE, so the application's thread encodes), two simulated
nodes (per-rank VLCC_NODE_ID through mpiexec's MPMD syntax); one node's
directory removed; the restart restores bit-exact from the other node."""

from __future__ import annotations

import os
import shutil

import pytest

from capi_helpers import MPIEXEC, build_c, clean_env, run

PROG = r"""
#include <stdio.h>
#include <string.h>
#include <vlcc.h>
#define N 4096
int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size; MPI_Comm_rank(MPI_COMM_WORLD, &rank); MPI_Comm_size(MPI_COMM_WORLD, &size);
    char opts[1024];
    snprintf(opts, sizeof opts, "mode=async;local_dir=%s;redundancy=%s;persist=never", argv[2], argv[4]);
    static double a[N];
    int64_t ls[1] = {N}, gs[1] = {(int64_t)N * size}, off[1] = {(int64_t)N * rank};
    char id[VLCC_ID_MAX];
    if (vlcc_init(argv[1], MPI_COMM_WORLD, opts)) { printf("init: %s\n", vlcc_last_error()); return 1; }
    if (vlcc_register("a", a, VLCC_FLOAT64, 1, ls, gs, off, 0)) { printf("reg: %s\n", vlcc_last_error()); return 1; }
    int ok = 1;
    if (strcmp(argv[3], "write") == 0) {
        for (int s = 1; s <= 3; s++) {
            for (int i = 0; i < N; i++) a[i] = rank * N + i + 0.25 * s;
            if (vlcc_checkpoint(s, NULL, id, sizeof id)) { printf("ckpt: %s\n", vlcc_last_error()); return 1; }
        }
        if (vlcc_wait()) { printf("wait: %s\n", vlcc_last_error()); return 1; }
    } else {
        if (vlcc_restore(NULL)) { printf("restore: %s\n", vlcc_last_error()); return 1; }
        for (int i = 0; i < N; i++) ok &= (a[i] == rank * N + i + 0.75);
    }
    int all; MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
    if (rank == 0) printf("%s ok=%d\n", argv[3], all);
    vlcc_finalize();
    MPI_Finalize();
    return 0;
}
"""


@pytest.mark.parametrize("red", ["partner", "xor"])
def test_c_options_protect_and_rebuild_a_lost_node(tmp_path, red):
    src = tmp_path / "prog.c"
    src.write_text(PROG)
    exe = build_c(src, tmp_path / "prog")
    repo, local = tmp_path / "repo", tmp_path / "local"

    def job(phase):
        cmd = [MPIEXEC]
        for node in (0, 1):
            cmd += (([":"] if node else []) + ["-n", "1", "-env", "VLCC_NODE_ID", str(node),
                                               str(exe), str(repo), str(local), phase, red])
        return run(cmd, timeout=300, env=clean_env())
    assert "write ok=1" in job("write").stdout
    shutil.rmtree(os.path.join(local, "node-1"))
    assert "restore ok=1" in job("restore").stdout
    assert os.path.exists(repo / "data")
    notes = [f.detail for f in __import__("vlcc").Repository(str(repo)).doctor().findings
             if f.kind == "node-local"]
    assert any("node(s) 1 were rebuilt" in n for n in notes), notes
