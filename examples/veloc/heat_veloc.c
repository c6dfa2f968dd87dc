/* 2-D heat equation written against VeloC's memory-based API (include/veloc.h), run on vlcc.
 *
 *   mpicc $(vlcc-config --cflags) heat_veloc.c -o heat_veloc $(vlcc-config --libs)
 *   mpiexec -n 2 ./heat_veloc CFG [--ny 64] [--nx 48] [--steps 200] [--every 20]
 *                                 [--dist 1|0] [--hang-at STEP] [--out FILE]
 *
 * CFG is a VeloC configuration file:   persistent = runs/heat_veloc
 *                                      scratch = /dev/shm/heat_veloc
 *                                      mode = sync
 * The grid (ny x nx, zero Dirichlet boundary) is split into row blocks with one ghost row
 * on each side. The field is protected as region 0, the step counter as region 1.
 *   --dist 1 (default): region 0 is a block of a distributed array (vlcc's extension
 *            VELOC_Mem_protect_dist): a run checkpointed on N ranks restarts on M.
 *   --dist 0: plain VELOC_Mem_protect of the whole local buffer, as a VeloC program does:
 *            restart on the same rank count only.
 * At start the program asks VELOC_Restart_test for the newest checkpoint "heat" and, if
 * there is one, restarts from it. --hang-at S stops after step S (rank 0 prints
 * "heat_veloc: hanging at step S") and waits forever, to be killed from outside (a crash
 * between checkpoints). --out writes the final global field (float64, row-major) to FILE.
 * The update is the same as examples/heat/heat.c: bit-exact on any decomposition.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <mpi.h>
#include <veloc.h>

#define CHECK(call) do { if ((call) != VELOC_SUCCESS) { \
    fprintf(stderr, "heat_veloc: %s failed: %s\n", #call, vlcc_last_error()); fflush(stderr); \
    /* vlcc fails collectives on every rank: let each print before the abort \
       kills the others (seen once: the message lost, stderr empty) */ \
    usleep(200000); MPI_Abort(MPI_COMM_WORLD, 2); } } while (0)

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (argc < 2) {
        if (rank == 0) fprintf(stderr, "usage: heat_veloc CFG [--ny N] [--nx N] [--steps N] "
                                       "[--every K] [--dist 1|0] [--hang-at S] [--out FILE]\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    const char *cfg = argv[1], *out = NULL;
    int ny = 64, nx = 48, steps = 200, every = 20, hang_at = -1, dist = 1;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--ny")) ny = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--nx")) nx = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--steps")) steps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--every")) every = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--hang-at")) hang_at = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dist")) dist = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--out")) out = argv[i + 1];
    }
    int nyl = ny / size + (rank < ny % size);
    int y0 = rank * (ny / size) + (rank < ny % size ? rank : ny % size);
    int W = nx + 2;
    double *u = calloc((size_t)(nyl + 2) * W, sizeof *u);
    double *v = calloc((size_t)(nyl + 2) * W, sizeof *v);
    for (int i = 0; i < nyl; i++)
        for (int j = 0; j < nx; j++) {
            int gy = y0 + i;
            double dy = (double)gy / ny - 0.3, dx = (double)j / nx - 0.6;
            u[(i + 1) * W + j + 1] = (dx * dx + dy * dy < 0.04) ? 100.0 : (double)((gy * 7 + j * 3) % 11);
        }
    int step = 0;

    CHECK(VELOC_Init(MPI_COMM_WORLD, cfg));
    if (dist) {
        int64_t lshape[2] = {nyl + 2, W}, gshape[2] = {ny, nx}, off[2] = {y0, 0};
        CHECK(VELOC_Mem_protect_dist(0, u, VLCC_FLOAT64, 2, lshape, gshape, off, 1));
    } else {
        CHECK(VELOC_Mem_protect(0, u, (size_t)(nyl + 2) * W, sizeof(double)));
    }
    CHECK(VELOC_Mem_protect(1, &step, 1, sizeof(int)));

    int latest = VELOC_Restart_test("heat", 0);
    if (latest != VELOC_FAILURE) {
        CHECK(VELOC_Restart("heat", latest));
        if (rank == 0) printf("heat_veloc: restarted from version %d at step %d on %d ranks\n",
                              latest, step, size);
    }

    const double a = 0.2;
    int up = rank > 0 ? rank - 1 : MPI_PROC_NULL, down = rank < size - 1 ? rank + 1 : MPI_PROC_NULL;
    while (step < steps) {
        MPI_Sendrecv(&u[1 * W], W, MPI_DOUBLE, up, 0, &u[(nyl + 1) * W], W, MPI_DOUBLE,
                     down, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        MPI_Sendrecv(&u[nyl * W], W, MPI_DOUBLE, down, 1, &u[0], W, MPI_DOUBLE, up, 1,
                     MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (up == MPI_PROC_NULL) memset(&u[0], 0, W * sizeof *u);
        if (down == MPI_PROC_NULL) memset(&u[(nyl + 1) * W], 0, W * sizeof *u);
        for (int i = 1; i <= nyl; i++)
            for (int j = 1; j <= nx; j++) {
                double c = u[i * W + j];
                v[i * W + j] = c + a * ((((u[(i - 1) * W + j] + u[(i + 1) * W + j]) + u[i * W + j - 1])
                                         + u[i * W + j + 1]) - 4.0 * c);
            }
        for (int i = 1; i <= nyl; i++)
            memcpy(&u[i * W + 1], &v[i * W + 1], nx * sizeof *u);
        step++;
        if (step % every == 0 || step == steps)
            CHECK(VELOC_Checkpoint("heat", step));
        if (step == hang_at) {
            if (rank == 0) printf("heat_veloc: hanging at step %d\n", step);
            fflush(stdout);
            for (;;) pause();          /* killed from outside: no cleanup, no MPI_Finalize */
        }
    }
    CHECK(VELOC_Checkpoint_wait());

    if (out) {
        double *block = malloc((size_t)nyl * nx * sizeof *block), *all = NULL;
        for (int i = 0; i < nyl; i++) memcpy(&block[i * nx], &u[(i + 1) * W + 1], nx * sizeof *u);
        int *counts = NULL, *displs = NULL, cnt = nyl * nx;
        if (rank == 0) {
            all = malloc((size_t)ny * nx * sizeof *all);
            counts = malloc(size * sizeof *counts);
            displs = malloc(size * sizeof *displs);
        }
        MPI_Gather(&cnt, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD);
        if (rank == 0) for (int r = 0, d = 0; r < size; d += counts[r], r++) displs[r] = d;
        MPI_Gatherv(block, cnt, MPI_DOUBLE, all, counts, displs, MPI_DOUBLE, 0, MPI_COMM_WORLD);
        if (rank == 0) {
            FILE *f = fopen(out, "wb");
            if (!f || fwrite(all, sizeof *all, (size_t)ny * nx, f) != (size_t)ny * nx) {
                perror(out);
                MPI_Abort(MPI_COMM_WORLD, 3);
            }
            fclose(f);
            free(all); free(counts); free(displs);
        }
        free(block);
    }
    if (rank == 0) printf("heat_veloc: done at step %d\n", step);
    CHECK(VELOC_Finalize(0));
    free(u); free(v);
    MPI_Finalize();
    return 0;
}
