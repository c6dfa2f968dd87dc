/* Adjoint of a 1-D nonlinear heat equation in C, with the state checkpointed by vlcc's
 * adjoint API (include/vlcc.h, "Adjoint computations").
 *
 *   mpicc $(vlcc-config --cflags) heat_adjoint.c -o heat_adjoint $(vlcc-config --libs)
 *   mpiexec -n 2 ./heat_adjoint REPO [--n 400] [--steps 60] [--schedule revolve]
 *                                    [--ram 5] [--disk 0]
 *
 * Forward:  u_{k+1} = u_k + r (u_{i-1} - 2 u_i + u_{i+1}) - dt u_i^3   (zero Dirichlet ends)
 * Cost:     J = 1/2 sum u_N^2, so the final adjoint is lambda_N = u_N and
 * Adjoint:  lambda_k = lambda_{k+1} (1 - 2r - 3 dt u_k^2) + r (lambda_{i-1} + lambda_{i+1})
 * gives dJ/du_0 = lambda_0. The grid is split into blocks (one per rank, ghost width 1),
 * registered as a distributed array; only u is registered, lambda is the program's own.
 * The program computes the gradient twice, storing all states in memory and with the vlcc
 * schedule, and prints whether both agree bit for bit and how many steps each needed.
 */
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <mpi.h>
#include <vlcc.h>

#define CHECK(call) do { int rc_ = (call); if (rc_ != VLCC_OK) { \
    fprintf(stderr, "heat_adjoint: %s failed: %s (%d): %s\n", #call, vlcc_strerror(rc_), rc_, \
            vlcc_last_error()); fflush(stderr); \
    usleep(200000); /* vlcc fails collectives on every rank: let each print first */ \
    MPI_Abort(MPI_COMM_WORLD, 2); } } while (0)

static const double R = 0.2, DT = 0.05;
static int rank, size, nl;      /* nl: owned points of this rank */

/* Fill the ghost cells of a block (width 1): neighbours' edge values, 0 at the ends. */
static void halo(double *a)
{
    int left = rank > 0 ? rank - 1 : MPI_PROC_NULL, right = rank < size - 1 ? rank + 1 : MPI_PROC_NULL;
    a[0] = 0.0;
    a[nl + 1] = 0.0;
    MPI_Sendrecv(&a[1], 1, MPI_DOUBLE, left, 0, &a[nl + 1], 1, MPI_DOUBLE, right, 0,
                 MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    MPI_Sendrecv(&a[nl], 1, MPI_DOUBLE, right, 1, &a[0], 1, MPI_DOUBLE, left, 1,
                 MPI_COMM_WORLD, MPI_STATUS_IGNORE);
}

static void forward_step(double *u, double *tmp)
{
    halo(u);
    for (int i = 1; i <= nl; i++)
        tmp[i] = u[i] + R * ((u[i - 1] - 2.0 * u[i]) + u[i + 1]) - DT * (u[i] * u[i] * u[i]);
    memcpy(&u[1], &tmp[1], (size_t)nl * sizeof(double));
}

/* lambda <- J_k^T lambda at state u (interior of u only is used). */
static void adjoint_step(const double *u, double *lam, double *tmp)
{
    halo(lam);
    for (int i = 1; i <= nl; i++)
        tmp[i] = lam[i] * (1.0 - 2.0 * R - 3.0 * DT * (u[i] * u[i])) + R * (lam[i - 1] + lam[i + 1]);
    memcpy(&lam[1], &tmp[1], (size_t)nl * sizeof(double));
}

static void initial(double *u, int64_t n, int64_t off)
{
    for (int i = 1; i <= nl; i++) {
        double x = (double)(off + i - 1) / (double)(n - 1);
        u[i] = x * (1.0 - x) * 4.0 + 0.1 * (double)((off + i) % 7);
    }
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (argc < 2) {
        if (rank == 0) fprintf(stderr, "usage: heat_adjoint REPO [--n N] [--steps S] "
                                       "[--schedule NAME] [--ram R] [--disk D]\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    const char *repo = argv[1], *schedule = "revolve";
    int64_t n = 400;
    int steps = 60, ram = 5, disk = 0;
    for (int a = 2; a + 1 < argc; a += 2) {
        if (!strcmp(argv[a], "--n")) n = atoll(argv[a + 1]);
        else if (!strcmp(argv[a], "--steps")) steps = atoi(argv[a + 1]);
        else if (!strcmp(argv[a], "--schedule")) schedule = argv[a + 1];
        else if (!strcmp(argv[a], "--ram")) ram = atoi(argv[a + 1]);
        else if (!strcmp(argv[a], "--disk")) disk = atoi(argv[a + 1]);
    }
    int64_t off = n * rank / size;
    nl = (int)(n * (rank + 1) / size - off);
    double *u = calloc((size_t)nl + 2, sizeof(double));
    double *lam = calloc((size_t)nl + 2, sizeof(double));
    double *tmp = calloc((size_t)nl + 2, sizeof(double));
    double *ref = calloc((size_t)nl + 2, sizeof(double));
    double *hist = malloc((size_t)steps * (size_t)(nl + 2) * sizeof(double));

    /* 1. Reference: keep every state. */
    initial(u, n, off);
    for (int k = 0; k < steps; k++) {
        memcpy(&hist[(size_t)k * (nl + 2)], u, (size_t)(nl + 2) * sizeof(double));
        forward_step(u, tmp);
    }
    memcpy(ref, u, (size_t)(nl + 2) * sizeof(double));
    for (int k = steps - 1; k >= 0; k--)
        adjoint_step(&hist[(size_t)k * (nl + 2)], ref, tmp);
    free(hist);

    /* 2. The same gradient with vlcc storing and restoring u under the schedule. */
    char opts[128];
    snprintf(opts, sizeof opts, "ram=%d;disk=%d", ram, disk);
    CHECK(vlcc_init(repo, MPI_COMM_WORLD, NULL));
    int64_t lshape = nl + 2, gshape = n;
    CHECK(vlcc_register("heat/u", u, VLCC_FLOAT64, 1, &lshape, &gshape, &off, 1));
    initial(u, n, off);
    memset(lam, 0, (size_t)(nl + 2) * sizeof(double));
    CHECK(vlcc_adjoint_begin(schedule, steps, opts));
    long fwd = 0, rev = 0, expect = steps - 1, order_ok = 1, final_set = 0;
    for (;;) {
        int action, n0, n1;
        CHECK(vlcc_adjoint_next(&action, &n0, &n1));
        if (action == VLCC_ADJ_DONE)
            break;
        if (action == VLCC_ADJ_FORWARD) {
            for (int k = n0; k < n1; k++)
                forward_step(u, tmp);
            fwd += n1 - n0;
            if (n1 == steps && !final_set) {          /* u is u_N: lambda_N = dJ/du_N */
                memcpy(&lam[1], &u[1], (size_t)nl * sizeof(double));
                final_set = 1;
            }
        } else {
            if (n0 != expect--) order_ok = 0;
            adjoint_step(u, lam, tmp);
            rev++;
        }
    }
    int same = memcmp(&lam[1], &ref[1], (size_t)nl * sizeof(double)) == 0 && order_ok
               && final_set && rev == steps;
    int all_same;
    MPI_Allreduce(&same, &all_same, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (rank == 0)
        printf("heat_adjoint: schedule %s steps %d ram %d disk %d ranks %d forward_steps %ld "
               "reverse_steps %ld bitexact %d\n", schedule, steps, ram, disk, size, fwd, rev,
               all_same);
    CHECK(vlcc_finalize());
    free(u); free(lam); free(tmp); free(ref);
    MPI_Finalize();
    return all_same ? 0 : 3;
}
