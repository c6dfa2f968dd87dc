/* VeloC's named regions, Mem_clear, Checkpoint_finished, Cleanup and Init_single on vlcc.
 *
 *   mpicc $(vlcc-config --cflags) regions_veloc.c -o regions_veloc $(vlcc-config --libs)
 *   mpiexec -n 2 ./regions_veloc veloc.cfg        # VELOC_Init on MPI_COMM_WORLD
 *   ./regions_veloc veloc.cfg --single 7          # VELOC_Init_single(7, ...): no MPI at all
 *
 * Prints "what|result" lines (rank 0) that tests/capi/test_capi_veloc_regions.py checks:
 * checkpoint "alpha" stores the regions protected under "alpha", checkpoint "beta" (no
 * region of its own) the unnamed ones; Checkpoint_finished is polled until this rank's
 * writes are done; after Mem_clear/Region_clear nothing is left to checkpoint; restarts
 * recover each set into fresh buffers; Cleanup empties this process's scratch copies. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <mpi.h>
#include "veloc.h"

#define N 1000
static int rank = 0, single = 0;
static double a[N], b[N], c[N];
static int k[4];

static void show(const char *what, int rc)
{
    if (rank == 0) printf("%s|%s\n", what, rc == VELOC_SUCCESS ? "ok" : "fail");
    fflush(stdout);
}

static void fill(int gen)
{
    for (int i = 0; i < N; i++) {
        a[i] = 1000.0 * rank + i + gen;
        b[i] = -a[i];
        c[i] = 0.5 * i + rank;
    }
    for (int i = 0; i < 4; i++) k[i] = 10 * rank + i + gen;
}

/* version files of this process in the scratch directory (vlcc's node-local tier keeps one
 * directory per process, HOST-PID), counted with find(1) */
static int scratch_files(const char *scratch)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "find '%s' -type f -path '*-%d/data/*' 2>/dev/null | wc -l",
             scratch, (int)getpid());
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p) { if (fscanf(p, "%d", &n) != 1) n = -1; pclose(p); }
    return n;
}

int main(int argc, char **argv)
{
    if (argc < 2) { fprintf(stderr, "usage: %s CFG [--single ID] [--scratch DIR]\n", argv[0]); return 2; }
    const char *scratch = NULL;
    unsigned int id = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--single") && i + 1 < argc) { single = 1; id = (unsigned)atoi(argv[++i]); }
        else if (!strcmp(argv[i], "--scratch") && i + 1 < argc) scratch = argv[++i];
    }
    if (single) {
        show("init", VELOC_Init_single(id, argv[1]));        /* no MPI_Init: a serial program */
    } else {
        MPI_Init(&argc, &argv);
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        show("init", VELOC_Init(MPI_COMM_WORLD, argv[1]));
    }
    fill(1);
    show("region_protect_a", VELOC_Region_protect(0, a, N, sizeof(double), "alpha"));
    show("region_protect_b", VELOC_Region_protect(1, b, N, sizeof(double), "alpha"));
    show("mem_protect_c", VELOC_Mem_protect(0, c, N, sizeof(double)));
    show("mem_protect_k", VELOC_Mem_protect(2, k, 4, sizeof(int)));

    show("ckpt_alpha", VELOC_Checkpoint("alpha", 1));
    show("ckpt_beta", VELOC_Checkpoint("beta", 1));
    VELOC_Checkpoint_begin("alpha", 2);
    show("finished_inside_checkpoint", VELOC_Checkpoint_finished());   /* an error, as in VeloC */
    VELOC_Checkpoint_mem();
    show("ckpt_alpha_2", VELOC_Checkpoint_end(1));
    int polls = 0;
    while (VELOC_Checkpoint_finished() != VELOC_SUCCESS && polls < 600000) { usleep(100); polls++; }
    show("finished", VELOC_Checkpoint_finished());
    show("wait", VELOC_Checkpoint_wait());

    /* Forgetting regions: a checkpoint then has nothing to store (nothing committed). */
    show("region_unprotect_b", VELOC_Region_unprotect(1, "alpha"));
    show("region_unprotect_b_again", VELOC_Region_unprotect(1, "alpha"));
    show("mem_clear", VELOC_Mem_clear());
    show("ckpt_beta_after_clear", VELOC_Checkpoint("beta", 2));
    show("region_clear_alpha", VELOC_Region_clear("alpha"));
    show("ckpt_alpha_after_clear", VELOC_Checkpoint("alpha", 3));

    /* Restart each checkpoint into fresh, zeroed buffers. */
    memset(a, 0, sizeof a); memset(b, 0, sizeof b); memset(c, 0, sizeof c); memset(k, 0, sizeof k);
    show("restart_test_alpha", VELOC_Restart_test("alpha", 0) == 2 ? VELOC_SUCCESS : VELOC_FAILURE);
    VELOC_Region_protect(0, a, N, sizeof(double), "alpha");
    VELOC_Region_protect(1, b, N, sizeof(double), "alpha");
    show("restart_alpha", VELOC_Restart("alpha", 1));
    VELOC_Mem_protect(0, c, N, sizeof(double));
    VELOC_Mem_protect(2, k, 4, sizeof(int));
    show("restart_beta", VELOC_Restart("beta", 1));
    int good = 1;
    for (int i = 0; i < N; i++)
        good &= a[i] == 1000.0 * rank + i + 1 && b[i] == -a[i] && c[i] == 0.5 * i + rank;
    for (int i = 0; i < 4; i++) good &= k[i] == 10 * rank + i + 1;
    if (!single) MPI_Allreduce(MPI_IN_PLACE, &good, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
    show("values", good ? VELOC_SUCCESS : VELOC_FAILURE);

    if (scratch) {
        int before = scratch_files(scratch);
        show("cleanup_alpha", VELOC_Cleanup("alpha"));
        show("cleanup_beta", VELOC_Cleanup("beta"));
        int after = scratch_files(scratch);
        if (rank == 0) printf("scratch_files|%d|%d\n", before, after);
    }
    show("finalize", VELOC_Finalize(1));
    if (!single) MPI_Finalize();
    return 0;
}
