/* 2-D heat equation in C with vlcc checkpoint/restart (include/vlcc.h).
 *
 *   mpicc $(vlcc-config --cflags) heat.c -o heat $(vlcc-config --libs)
 *   mpiexec -n 2 ./heat REPO [--ny 64] [--nx 48] [--steps 200] [--every 20]
 *                           [--crash-at STEP] [--out FILE]
 *
 * The grid (ny x nx, zero Dirichlet boundary) is split into row blocks, one per rank,
 * each with a ghost layer of width 1. The block is registered as a distributed array
 * (global shape, offset, halo=1), so a run checkpointed on N ranks restarts on M.
 * If REPO already holds a version, the run restarts from the newest one. --crash-at
 * kills the process with SIGKILL after that step (a crash between checkpoints).
 * --out writes the final global field (float64, row-major) to FILE from rank 0.
 * Update: u += a * (((n + s) + w) + e - 4u), a = 0.2, the same order on every rank
 * count, so the result is bit-exact whatever the decomposition or restarts.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <mpi.h>
#include <vlcc.h>

#define CHECK(call) do { int rc_ = (call); if (rc_ != VLCC_OK) { \
    fprintf(stderr, "heat: %s failed: %s (%d): %s\n", #call, vlcc_strerror(rc_), rc_, \
            vlcc_last_error()); fflush(stderr); \
    usleep(200000); /* vlcc fails collectives on every rank: let each print first */ \
    MPI_Abort(MPI_COMM_WORLD, 2); } } while (0)

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (argc < 2) {
        if (rank == 0) fprintf(stderr, "usage: heat REPO [--ny N] [--nx N] [--steps N] "
                                       "[--every K] [--crash-at S] [--out FILE]\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    const char *repo = argv[1], *out = NULL;
    int64_t ny = 64, nx = 48, steps = 200, every = 20, crash_at = -1;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--ny")) ny = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--nx")) nx = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--steps")) steps = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--every")) every = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--crash-at")) crash_at = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--out")) out = argv[i + 1];
    }
    /* Row decomposition: the first ny % size ranks get one row more. */
    int64_t nyl = ny / size + (rank < ny % size), y0 = rank * (ny / size) + (rank < ny % size ? rank : ny % size);
    int64_t W = nx + 2;
    double *u = calloc((size_t)((nyl + 2) * W), sizeof *u);
    double *v = calloc((size_t)((nyl + 2) * W), sizeof *v);
    for (int64_t i = 0; i < nyl; i++)
        for (int64_t j = 0; j < nx; j++) {
            int64_t gy = y0 + i;
            double dy = (double)gy / ny - 0.3, dx = (double)j / nx - 0.6;
            u[(i + 1) * W + j + 1] = (dx * dx + dy * dy < 0.04) ? 100.0 : (double)((gy * 7 + j * 3) % 11);
        }
    int64_t step = 0;

    CHECK(vlcc_init(repo, MPI_COMM_WORLD, NULL));
    int64_t lshape[2] = {nyl + 2, W}, gshape[2] = {ny, nx}, off[2] = {y0, 0}, one = 1;
    CHECK(vlcc_register("heat/u", u, VLCC_FLOAT64, 2, lshape, gshape, off, 1));
    CHECK(vlcc_register("heat/step", &step, VLCC_INT64, 1, &one, NULL, NULL, 0));

    char id[VLCC_ID_MAX];
    int rc = vlcc_query("latest", id, sizeof id, NULL);
    if (rc == VLCC_OK) {
        CHECK(vlcc_restore(id));     /* fills u's interior and step, on any rank count */
        if (rank == 0) printf("heat: restarted from version %s at step %lld on %d ranks\n",
                              id, (long long)step, size);
    } else if (rc != VLCC_ENOTFOUND) {
        CHECK(rc);
    }

    const double a = 0.2;
    int up = rank > 0 ? rank - 1 : MPI_PROC_NULL, down = rank < size - 1 ? rank + 1 : MPI_PROC_NULL;
    while (step < steps) {
        /* Halo exchange (rows), then the boundary ghosts stay 0 (Dirichlet). */
        MPI_Sendrecv(&u[1 * W], (int)W, MPI_DOUBLE, up, 0, &u[(nyl + 1) * W], (int)W, MPI_DOUBLE,
                     down, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        MPI_Sendrecv(&u[nyl * W], (int)W, MPI_DOUBLE, down, 1, &u[0], (int)W, MPI_DOUBLE, up, 1,
                     MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (up == MPI_PROC_NULL) memset(&u[0], 0, W * sizeof *u);
        if (down == MPI_PROC_NULL) memset(&u[(nyl + 1) * W], 0, W * sizeof *u);
        for (int64_t i = 1; i <= nyl; i++)
            for (int64_t j = 1; j <= nx; j++) {
                double c = u[i * W + j];
                v[i * W + j] = c + a * ((((u[(i - 1) * W + j] + u[(i + 1) * W + j]) + u[i * W + j - 1])
                                         + u[i * W + j + 1]) - 4.0 * c);
            }
        for (int64_t i = 1; i <= nyl; i++)
            memcpy(&u[i * W + 1], &v[i * W + 1], nx * sizeof *u);
        step++;
        if (step % every == 0 || step == steps) {
            char msg[64];
            snprintf(msg, sizeof msg, "heat.c step %lld", (long long)step);
            CHECK(vlcc_checkpoint(step, msg, id, sizeof id));
        }
        if (step == crash_at) {
            fflush(stdout);
            kill(getpid(), SIGKILL);   /* a crash: no cleanup, no MPI_Finalize */
        }
    }

    if (out) {
        double *block = malloc((size_t)(nyl * nx) * sizeof *block), *all = NULL;
        for (int64_t i = 0; i < nyl; i++) memcpy(&block[i * nx], &u[(i + 1) * W + 1], nx * sizeof *u);
        int *counts = NULL, *displs = NULL, cnt = (int)(nyl * nx);
        if (rank == 0) {
            all = malloc((size_t)(ny * nx) * sizeof *all);
            counts = malloc(size * sizeof *counts);
            displs = malloc(size * sizeof *displs);
        }
        MPI_Gather(&cnt, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD);
        if (rank == 0) for (int r = 0, d = 0; r < size; d += counts[r], r++) displs[r] = d;
        MPI_Gatherv(block, cnt, MPI_DOUBLE, all, counts, displs, MPI_DOUBLE, 0, MPI_COMM_WORLD);
        if (rank == 0) {
            FILE *f = fopen(out, "wb");
            if (!f || fwrite(all, sizeof *all, (size_t)(ny * nx), f) != (size_t)(ny * nx)) {
                perror(out);
                MPI_Abort(MPI_COMM_WORLD, 3);
            }
            fclose(f);
            free(all); free(counts); free(displs);
        }
        free(block);
    }
    if (rank == 0) printf("heat: done at step %lld, last version %s\n", (long long)step, id);
    CHECK(vlcc_finalize());
    free(u); free(v);
    MPI_Finalize();
    return 0;
}
