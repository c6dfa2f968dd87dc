/* A C "solver" library used by a Python driver (driver.py): it owns a distributed 1-D
 * field and registers it with vlcc through libvlcc. The driver shares its Checkpointer
 * (vlcc.capi.attach), so one checkpoint holds the solver's field and the driver's state.
 *
 *   mpicc -shared -fPIC $(vlcc-config --cflags) solver.c -o libsolver.so $(vlcc-config --libs)
 */
#include <stdlib.h>
#include <mpi.h>
#include <vlcc.h>

static double *field = NULL;
static int64_t nlocal = 0, offset = 0;

/* Allocate this rank's block of a global field of n points and register it as
 * "solver/u". fcomm: Fortran handle of the communicator (mpi4py: comm.py2f()). */
int solver_setup(const char *repo, int fcomm, int64_t n)
{
    MPI_Comm comm = MPI_Comm_f2c(fcomm);
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    nlocal = n / size + (rank < n % size);
    offset = rank * (n / size) + (rank < n % size ? rank : n % size);
    field = calloc((size_t)nlocal, sizeof *field);
    for (int64_t i = 0; i < nlocal; i++) field[i] = (double)(offset + i);
    int rc = vlcc_init_f(repo, fcomm, NULL);    /* VLCC_OK at once if the driver attached */
    if (rc) return rc;
    int64_t gshape = n;
    return vlcc_register("solver/u", field, VLCC_FLOAT64, 1, &nlocal, &gshape, &offset, 0);
}

/* One "time step": every point grows by its global index times 0.5. */
void solver_step(void)
{
    for (int64_t i = 0; i < nlocal; i++) field[i] += 0.5 * (double)(offset + i);
}

double solver_value(int64_t i) { return field[i]; }
int64_t solver_nlocal(void) { return nlocal; }
int64_t solver_offset(void) { return offset; }

int solver_teardown(void)
{
    int rc = vlcc_unregister("solver/u");
    free(field);
    field = NULL;
    return rc;
}
