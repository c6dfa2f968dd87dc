/* The few MPI calls heat.f90 needs, for gfortran programs without a Fortran MPI library.
 * The PyPI mpich wheel (vlcc's default MPI) ships libmpi with C bindings only (no
 * libmpifort, no mpi.mod); a Fortran program then calls MPI through these C functions.
 * With a system MPI that has mpifort, use `use mpi` instead and pass MPI_COMM_WORLD
 * to vlcc_init directly (docs/capi.md). Build: mpicc -c heat_mpi.c */
#include <signal.h>
#include <unistd.h>
#include <mpi.h>

void hm_init(void) { MPI_Init(NULL, NULL); }
void hm_finalize(void) { MPI_Finalize(); }
int hm_comm_world(void) { return (int)MPI_Comm_c2f(MPI_COMM_WORLD); }   /* Fortran handle */
int hm_rank(void) { int r; MPI_Comm_rank(MPI_COMM_WORLD, &r); return r; }
int hm_size(void) { int s; MPI_Comm_size(MPI_COMM_WORLD, &s); return s; }
void hm_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }
void hm_kill_self(void) { kill(getpid(), SIGKILL); }

/* Send n doubles to `dest` and receive n from `src` (-1 = no neighbour). */
void hm_sendrecv(const double *sbuf, int n, int dest, double *rbuf, int src, int tag)
{
    MPI_Sendrecv(sbuf, n, MPI_DOUBLE, dest < 0 ? MPI_PROC_NULL : dest, tag,
                 rbuf, n, MPI_DOUBLE, src < 0 ? MPI_PROC_NULL : src, tag,
                 MPI_COMM_WORLD, MPI_STATUS_IGNORE);
}
