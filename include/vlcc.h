/*
 * vlcc.h — the C ABI of vlcc (Versioned Lineage-driven Checkpointing of Composable States).
 *
 * libvlcc embeds vlcc's Python core (cffi embedding mode). A C or Fortran program
 * registers its buffers as providers and checkpoints/restores them into the same
 * versioned repository, with the same lineage, N->M restart and integrity checks,
 * as Python programs; it may be mixed with Python providers in one process.
 *
 * Build:   cc $(vlcc-config --cflags) prog.c $(vlcc-config --libs)     (with mpicc)
 * Fortran: gfortran $(vlcc-config --fflags) prog.f90 $(vlcc-config --flibs)
 *
 * Rules common to every function:
 *  - Return 0 (VLCC_OK) on success or a negative VLCC_E* code; the message of the
 *    last failing call on this rank is in vlcc_last_error() (never NULL).
 *  - "Collective" functions must be called by every rank of the communicator
 *    given to vlcc_init, in the same order. If one rank fails, the call returns
 *    the same error code on every rank (no hang); nothing committed is touched.
 *  - The program calls MPI_Init before vlcc_init and MPI_Finalize after
 *    vlcc_finalize; libvlcc never initializes or finalizes MPI itself.
 *  - The first call starts the embedded Python interpreter (about 0.2 s). If it
 *    cannot start (e.g. a missing package), every call returns VLCC_EINIT and
 *    vlcc_last_error() holds the Python traceback.
 *  - Not thread-safe: call from one thread per process (MPI_THREAD_FUNNELED is enough).
 */
#ifndef VLCC_H
#define VLCC_H

#include <stddef.h>
#include <stdint.h>
#include <mpi.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VLCC_VERSION_STRING "0.1.0"
/* Version ids are 32 characters or fewer; a buffer of VLCC_ID_MAX bytes always fits one. */
#define VLCC_ID_MAX 64

/* Error codes (returned negated in C, as the same negative integers to Fortran). */
typedef enum {
    VLCC_OK = 0,
    VLCC_EINIT = -1,        /* the embedded Python could not start; see vlcc_last_error() */
    VLCC_ESTATE = -2,       /* call out of order: before vlcc_init, after vlcc_finalize,
                               vlcc_init twice, MPI not initialized */
    VLCC_EINVAL = -3,       /* invalid argument: NULL pointer, bad dtype/ndim/name/option */
    VLCC_ENOTFOUND = -4,    /* unknown version, branch or tag */
    VLCC_EMISMATCH = -5,    /* shape, dtype or decomposition differs from the stored one */
    VLCC_EPROVIDER = -6,    /* provider registered twice, missing from a version, or unknown */
    VLCC_ECORRUPT = -7,     /* stored bytes do not match their checksum */
    VLCC_ESTORAGE = -8,     /* the file system refused a read or write (space, permissions) */
    VLCC_EREPO = -9,        /* the path is not a usable repository (or newer format) */
    VLCC_EEXISTS = -10,     /* branch or tag name already exists */
    VLCC_ECOLLECTIVE = -11, /* another rank failed with an error of another kind */
    VLCC_ETRUNC = -12,      /* output buffer too small (the id is truncated) */
    VLCC_EUNSUPPORTED = -13,/* feature not supported by this build */
    VLCC_EINTERNAL = -99    /* unexpected error inside vlcc; see vlcc_last_error() */
} vlcc_error;

/* Element types of registered buffers. */
typedef enum {
    VLCC_BYTE = 0,          /* uint8 */
    VLCC_FLOAT32 = 1,
    VLCC_FLOAT64 = 2,
    VLCC_INT8 = 3,
    VLCC_INT16 = 4,
    VLCC_INT32 = 5,
    VLCC_INT64 = 6,
    VLCC_UINT8 = 7,
    VLCC_UINT16 = 8,
    VLCC_UINT32 = 9,
    VLCC_UINT64 = 10,
    VLCC_COMPLEX64 = 11,
    VLCC_COMPLEX128 = 12
} vlcc_dtype;

/* Flags of vlcc_register_ex. */
#define VLCC_ORDER_C 0        /* row-major: the last dimension varies fastest (C) */
#define VLCC_ORDER_F 1        /* column-major: the first dimension varies fastest (Fortran) */

/* Start vlcc on communicator `comm` (not freed by vlcc; vlcc works on a duplicate) with the
 * repository at `repo_path` (created when missing). Collective.
 * options: NULL or "key=value;key=value": branch=NAME (default main), chunk_size=BYTES,
 *          mode=sync|async (async: vlcc_checkpoint returns once the buffers are copied into
 *          the memory tier; background threads write and a later collective call commits;
 *          vlcc_wait blocks until all is durable), local_dir=PATH|none (node-local tier),
 *          memory_budget=SIZE (e.g. 512MiB; memory tier per rank; async checkpoints wait
 *          when it is full), create=0|1 (default 1: create a missing repository).
 * Errors: VLCC_ESTATE (MPI not initialized, already initialized), VLCC_EINVAL (NULL path,
 *         bad option), VLCC_EREPO, VLCC_ESTORAGE, VLCC_EINIT. */
int vlcc_init(const char *repo_path, MPI_Comm comm, const char *options);

/* As vlcc_init, with a Fortran communicator handle (MPI_Comm_c2f / the integer of `use mpi`). */
int vlcc_init_f(const char *repo_path, MPI_Fint fcomm, const char *options);

/* Register `data` as provider `name` (parts of [A-Za-z0-9_.-] separated by '/'). Local, not
 * collective, but every rank must register the same names before the next checkpoint.
 * `data` stays owned by the caller and must stay valid until vlcc_unregister/vlcc_finalize:
 * vlcc captures straight from it (zero-copy when halo == 0) and restores straight into it.
 *  local_shape[ndim]:  shape of the buffer as allocated, ghost layers included (C order).
 *  global_shape[ndim]: NULL for a plain per-rank buffer; else the global array's shape and
 *  offset[ndim]:       the global index of this rank's first owned element (NULL = zeros).
 *  halo:               ghost width on each side of every dimension (not stored; the caller
 *                      refreshes ghosts after vlcc_restore).
 * Distributed buffers (global_shape != NULL) restore on any rank count (N->M); plain
 * per-rank buffers only on the same rank count, or on any if every rank held the same bytes.
 * Errors: VLCC_EINVAL (NULL data/name/local_shape, ndim < 0 or > 32, unknown dtype,
 *         block outside global shape), VLCC_EPROVIDER (name already registered), VLCC_ESTATE. */
int vlcc_register(const char *name, void *data, vlcc_dtype dtype, int ndim,
                  const int64_t *local_shape, const int64_t *global_shape,
                  const int64_t *offset, int halo);

/* As vlcc_register, with `flags` = VLCC_ORDER_C or VLCC_ORDER_F. With VLCC_ORDER_F the shapes
 * and offset are given in the buffer's own (Fortran) dimension order, and element
 * a(i1,...,in) (0-based) is stored at global index (i1,...,in): Python's Repository.read and a
 * C program see the same element at the same index tuple. */
int vlcc_register_ex(const char *name, void *data, vlcc_dtype dtype, int ndim,
                     const int64_t *local_shape, const int64_t *global_shape,
                     const int64_t *offset, int halo, int flags);

/* Forget provider `name` (no effect on stored versions). Local.
 * Errors: VLCC_EINVAL (NULL), VLCC_EPROVIDER (not registered), VLCC_ESTATE. */
int vlcc_unregister(const char *name);

/* Capture every registered provider (C, Fortran and Python ones of this process) into a
 * new committed version on the current branch. Collective. Atomic: on error nothing
 * becomes visible. `message` may be NULL. If `version_id` is not NULL the new id is copied
 * into it (NUL-terminated; VLCC_ETRUNC if id_len is too small — the version IS committed).
 * Errors: VLCC_EPROVIDER (nothing registered, or ranks registered different names),
 *         VLCC_EMISMATCH, VLCC_ESTORAGE, VLCC_ECOLLECTIVE, VLCC_ESTATE. */
int vlcc_checkpoint(int64_t step, const char *message, char *version_id, size_t id_len);

/* Restore every registered provider from `version`: NULL or "latest" (newest version of the
 * current branch), a version id or unique prefix, "tag:NAME", "branch:NAME", "step:N",
 * "step:N@BRANCH" or a bare branch/tag name (the specs of vlcc_resolve). Collective; N->M aware for
 * distributed buffers. All or nothing: every rank reads and checks every provider's bytes
 * (checksums, shapes, dtypes) before any registered buffer is written, so an error leaves
 * all buffers on all ranks as they were. The restored version becomes the parent of the
 * next checkpoint.
 * Errors: VLCC_ENOTFOUND (unknown version, or no version yet), VLCC_EMISMATCH (shape or
 *         dtype differs), VLCC_EPROVIDER (registered provider missing from the version, or
 *         stored provider not registered), VLCC_ECORRUPT, VLCC_ESTATE. */
int vlcc_restore(const char *version);

/* Resolve `version` (as in vlcc_restore) without restoring: copy its id into `version_id`
 * (if not NULL) and its step into *step (if not NULL; -1 when it has none). Collective.
 * Errors: VLCC_ENOTFOUND (e.g. no version yet: use it to test whether to restart),
 *         VLCC_ETRUNC, VLCC_ESTATE. */
int vlcc_query(const char *version, char *version_id, size_t id_len, int64_t *step);
/* vlcc_resolve: the same call as vlcc_query, under the name of Python's Repository.resolve and
 * the CLI's `vlcc resolve`. Version specs (both): an id or unique id prefix, "latest" (or NULL:
 * the head of the current branch), "tag:NAME", "branch:NAME", "step:N" (the newest version
 * with step N), "step:N@BRANCH" (on BRANCH's lineage), a bare branch or tag name. */
int vlcc_resolve(const char *version, char *version_id, size_t id_len, int64_t *step);

/* Create branch `name` at `at` (NULL: the current parent version). Collective; does not
 * switch. Errors: VLCC_EEXISTS, VLCC_ENOTFOUND, VLCC_EINVAL. */
int vlcc_branch(const char *name, const char *at);

/* Write the next versions on branch `name` (create != 0: create it at the current parent
 * when missing). Collective. Errors: VLCC_ENOTFOUND, VLCC_EINVAL. */
int vlcc_switch(const char *name, int create);

/* Fix tag `name` on `version` (NULL: the current parent). Collective.
 * Errors: VLCC_EEXISTS, VLCC_ENOTFOUND, VLCC_EINVAL. */
int vlcc_tag(const char *name, const char *version);

/* Block until every version checkpointed so far is durable on persistent storage and
 * committed (async mode; sync mode: returns at once). Collective.
 * Errors: VLCC_ESTORAGE (a background flush failed on some rank: the pending versions
 *         are abandoned, committed ones are intact), VLCC_ESTATE. */
int vlcc_wait(void);

/* Release vlcc's communicator and forget every provider (the buffers are not touched).
 * Collective; call before MPI_Finalize. vlcc_init may be called again afterwards.
 * Errors: VLCC_ESTATE (not initialized). */
int vlcc_finalize(void);

/* Message of the last failing call on this rank ("" if none). Not collective; the pointer
 * stays valid until the next vlcc call. */
const char *vlcc_last_error(void);

/* Symbolic name of an error code, e.g. "VLCC_ENOTFOUND". */
const char *vlcc_strerror(int code);

/* ==== Adjoint computations (revolve-style schedules) ======================================
 * For codes whose state is registered through vlcc_register: libvlcc runs a checkpoint
 * schedule (Python: vlcc.adjoint.Adjoint) and hands the program one action at a time; it
 * stores and restores the registered buffers itself between actions (RAM snapshots in this
 * process; disk snapshots as versions on a private branch, removed at the end).
 *
 *   vlcc_adjoint_begin("revolve", n_steps, "ram=10");
 *   for (;;) {
 *       vlcc_adjoint_next(&action, &n0, &n1);
 *       if (action == VLCC_ADJ_DONE) break;
 *       if (action == VLCC_ADJ_FORWARD) {          advance the buffers from step n0 to n1
 *           for (k = n0; k < n1; k++) step(k);
 *           if (n1 == n_steps && !final_set) { set the final adjoint from u_N; final_set = 1; }
 *       } else adjoint_step(n0);                   VLCC_ADJ_REVERSE: buffers hold u_n0
 *   }
 *
 * REVERSE actions come exactly once for n0 = n_steps-1, ..., 0, in that order. The first
 * FORWARD action with n1 == n_steps ends the forward sweep (no later FORWARD reaches n_steps).
 * The adjoint variables must not be registered; REVERSE must not change registered buffers. */
#define VLCC_ADJ_DONE 0       /* the run is over; every snapshot is released */
#define VLCC_ADJ_FORWARD 1    /* advance the registered state from step *n0 to step *n1 */
#define VLCC_ADJ_REVERSE 2    /* adjoint step *n0 (*n1 = *n0 + 1); the state is u_{*n0} */

/* Start an adjoint run over `n_steps` steps (>= 1) from the current registered state u_0.
 * Collective. schedule: "revolve" (RAM only), "multistage" or "hrevolve" (RAM + disk),
 * "twolevel" (a disk snapshot every `period` steps, binomial in RAM).
 * options: NULL or "key=value;...": ram=N (snapshots in memory, u_0 included; required),
 *          disk=N (snapshots on disk, default 0), period=N (twolevel), prefetch=0|1
 *          (default 1: declare the exact disk restore order to the engine), keep=0|1
 *          (default 0: keep the disk snapshots as versions on branch adjoint/<run>).
 * Errors: VLCC_EINVAL (n_steps < 1, ram < 1, unknown schedule or option, disk snapshots with
 *         disk=0), VLCC_ESTATE (not initialized, a run in progress). */
int vlcc_adjoint_begin(const char *schedule, int n_steps, const char *options);

/* The next action of the run started by vlcc_adjoint_begin (see VLCC_ADJ_*). Collective:
 * restores are collective, every rank gets the same action. After VLCC_ADJ_DONE a new run
 * may begin. On an error the run is abandoned (its snapshots removed) on every rank.
 * Errors: VLCC_EINVAL (NULL pointer), VLCC_ESTATE (no run), storage/collective errors. */
int vlcc_adjoint_next(int *action, int *n0, int *n1);
/* ==== end of Adjoint computations ==== */

#ifdef __cplusplus
}
#endif
#endif /* VLCC_H */
