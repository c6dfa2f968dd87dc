/*
 * veloc.h — VeloC's memory-based checkpoint API on top of vlcc (libvlcc).
 *
 * Programs written for VeloC's memory-based API compile and run against libvlcc
 * unchanged:   mpicc $(vlcc-config --cflags) prog.c -o prog $(vlcc-config --libs)
 *
 * How VeloC's words map onto vlcc (docs/capi.md, "VeloC API"):
 *  - configuration file (INI, "key = value", '#' comments):
 *        persistent = PATH   the vlcc repository (required; created when missing)
 *        scratch    = PATH   node-local tier directory (vlcc's local_dir; used by async mode)
 *        mode       = sync | async   (default sync)
 *        memory_budget = SIZE, chunk_size = BYTES   (vlcc extensions, optional)
 *    VeloC keys without meaning here (max_versions, scratch_versions, persistent_interval,
 *    ec_interval, watchdog_interval, failure_domain, axl_type, chksum, meta, threaded,
 *    aggregated) are accepted and ignored; any other key is an error.
 *  - checkpoint `name`  -> a vlcc branch of that name; `version` -> the version's step.
 *    Every checkpoint is a vlcc version: committed atomically, checksummed, with lineage,
 *    readable from Python (vlcc.Repository(persistent).read(v, "veloc/<id>")).
 *    VELOC_Init_single (no MPI): checkpoint `name` of process `id` is the branch "<name>.<id>".
 *  - regions by name, as VeloC: VELOC_Region_protect(..., name) protects a region for
 *    checkpoint `name` only; a checkpoint/restart of `name` uses the regions protected under
 *    `name` when there are any, else the unnamed ones (VELOC_Mem_protect).
 *  - protected region `id` -> provider "veloc/<id>". VELOC_Mem_protect stores the region's
 *    bytes per rank (restart on the same rank count, or on any if all ranks hold the same
 *    bytes); the vlcc extension VELOC_Mem_protect_dist stores a block of a distributed
 *    array, restorable on ANY rank count (N->M), which VeloC itself cannot do.
 *  - no backend daemon: async mode runs vlcc's flush threads inside the process;
 *    VELOC_Finalize commits what is still in flight and returns.
 *
 * Return values: VELOC_SUCCESS or VELOC_FAILURE (VELOC_Restart_test and VELOC_Recover_size
 * return a value instead). On failure the reason is printed to stderr as "VELOC (vlcc): ..."
 * and kept in vlcc_last_error().
 * "Collective" functions must be called by every rank of the communicator given to
 * VELOC_Init, in the same order; a failure on one rank fails the call on all ranks.
 * Not thread-safe: call from one thread.
 */
#ifndef VLCC_VELOC_H
#define VLCC_VELOC_H

#include <stddef.h>
#include <stdint.h>
#include <mpi.h>
#include "vlcc.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VELOC_VERSION_MAJOR 1
#define VELOC_VERSION_MINOR 0
#define VELOC_VERSION_PATCH 0
#define VELOC_VERSION "v1.0.0-vlcc"
#define VELOC_IMPLEMENTATION_VLCC 1   /* this veloc.h is vlcc's (test with #ifdef) */

#ifndef VELOC_SUCCESS
#define VELOC_SUCCESS (0)
#endif
#ifndef VELOC_FAILURE
#define VELOC_FAILURE (-1)
#endif

#define VELOC_MAX_NAME (1024)

#define VELOC_RECOVER_ALL (0)
#define VELOC_RECOVER_SOME (1)
#define VELOC_RECOVER_REST (2)

#define VELOC_CKPT_ALL (0)
#define VELOC_CKPT_SOME (1)
#define VELOC_CKPT_REST (2)

/* ---- init / finalize ------------------------------------------------------------------ */

/* Start on communicator `comm` with the configuration file `cfg_file` (see above).
 * Collective; MPI must be initialized. Fails if the file is missing or malformed, lacks
 * `persistent`, has an unknown key, or vlcc is already initialized in this process. */
int VELOC_Init(MPI_Comm comm, const char *cfg_file);

/* Standalone mode (VeloC's), for programs without MPI: this process checkpoints alone, `id`
 * being its unique id (e.g. an ensemble member). No MPI library is loaded or needed; the
 * repository has the same format as MPI runs'. Checkpoint `name` is stored as the vlcc
 * branch "<name>.<id>", so processes sharing one `persistent` never mix their checkpoints.
 * Same configuration file and failures as VELOC_Init. */
int VELOC_Init_single(unsigned int id, const char *cfg_file);

/* Commit what async mode still flushes, release everything; protected memory is not
 * touched. Collective. `cleanup` != 0 is accepted: the node-local (scratch) files of this
 * run are always removed, the persistent repository is never removed. */
int VELOC_Finalize(int cleanup);

/* ---- memory registration (local, not collective) -------------------------------------- */

/* Protect `count` elements of `base_size` bytes at `ptr` under `id` (>= 0). Protecting an
 * id again replaces the region (new pointer or size). The memory must stay valid until
 * VELOC_Mem_unprotect/VELOC_Finalize. Stored as raw bytes of this rank. */
int VELOC_Mem_protect(int id, void *ptr, size_t count, size_t base_size);

/* vlcc extension: protect a block of a distributed array, restorable on any rank count.
 *   ptr          this rank's buffer, `ndim` dimensions in C order, ghost layers included
 *   dtype        element type (vlcc_dtype of vlcc.h, e.g. VLCC_FLOAT64)
 *   local_shape  shape of the buffer as allocated (ghosts included)
 *   global_shape shape of the global array
 *   offset       global index of this rank's first owned element (NULL = zeros)
 *   halo         ghost width on each side of every dimension (not stored; refresh the
 *                ghosts after a restart)
 * The blocks of all ranks must tile the global array. On restart the region is protected
 * again with the new rank count's decomposition and filled from the stored global array. */
int VELOC_Mem_protect_dist(int id, void *ptr, vlcc_dtype dtype, int ndim,
                           const int64_t *local_shape, const int64_t *global_shape,
                           const int64_t *offset, int halo);

/* Forget region `id` (stored versions are not touched). Fails if it is not protected. */
int VELOC_Mem_unprotect(int id);

/* Forget every region protected with VELOC_Mem_protect / VELOC_Mem_protect_dist (the
 * unnamed set). Succeeds also when there is none. */
int VELOC_Mem_clear(void);

/* Protect a region for checkpoint `name` only (VeloC's named regions): checkpoints and
 * restarts of `name` use the regions protected under `name` when there is at least one,
 * otherwise the unnamed ones. `name` NULL or "" is the unnamed set (= VELOC_Mem_protect). */
int VELOC_Region_protect(int id, void *ptr, size_t count, size_t base_size, const char *name);

/* Forget region `id` of checkpoint `name`; fails if it is not protected under `name`. */
int VELOC_Region_unprotect(int id, const char *name);

/* Forget every region of checkpoint `name` (then its checkpoints use the unnamed set). */
int VELOC_Region_clear(const char *name);

/* ---- file registration ---------------------------------------------------------------- */

/* File-based checkpoints are NOT supported by vlcc's VeloC API: always VELOC_FAILURE, with
 * the message "file-based checkpoints are not supported ..." (routed is set to ""). */
int VELOC_Route_file(const char *original, char *routed);

/* ---- checkpoint (collective) ---------------------------------------------------------- */

/* Begin checkpoint `name` ([A-Za-z0-9_.]+) at `version` (>= 0; usually the iteration). */
int VELOC_Checkpoint_begin(const char *name, int version);

/* Select the protected regions of this checkpoint: VELOC_CKPT_ALL (ids ignored),
 * VELOC_CKPT_SOME (only `ids`), VELOC_CKPT_REST (all but `ids`). Fails if none is selected.
 * Memory is read at VELOC_Checkpoint_end: do not change the regions in between. Local. */
int VELOC_Checkpoint_selective(int mode, int *ids, int id_count);
int VELOC_Checkpoint_mem(void);   /* = VELOC_Checkpoint_selective(VELOC_CKPT_ALL, NULL, 0) */

/* End the checkpoint: with `success` = 1 on every rank the selected regions are captured
 * and committed as one vlcc version (sync mode: durable on return; async mode: captured
 * into memory, flushed in the background). If any rank passes 0, nothing is committed
 * (ranks that passed 1 get VELOC_FAILURE, ranks that passed 0 VELOC_SUCCESS). */
int VELOC_Checkpoint_end(int success);

/* Async mode: block until every checkpoint is durable and committed; then returns
 * VELOC_FAILURE if a background flush failed. Sync mode: returns at once. */
int VELOC_Checkpoint_wait(void);

/* Non-blocking test, local: VELOC_SUCCESS when this rank's checkpoints are finished (sync
 * mode: always; async mode: every background write of this rank reached the repository; the
 * version becomes visible at the next collective call, e.g. VELOC_Checkpoint_wait or the next
 * checkpoint), VELOC_FAILURE while they still run (nothing printed) or when called between
 * VELOC_Checkpoint_begin and VELOC_Checkpoint_end (an error, printed). */
int VELOC_Checkpoint_finished(void);

/* Remove this process's node-local (scratch) copies of the committed versions of checkpoint
 * `name`; every version stays in the repository (persistent) and restorable. Local. */
int VELOC_Cleanup(const char *name);

/* VELOC_Checkpoint_begin + VELOC_Checkpoint_mem + VELOC_Checkpoint_end(1). Unlike VeloC,
 * it does not wait for the previous async checkpoint (vlcc queues several). */
int VELOC_Checkpoint(const char *name, int version);

/* ---- restart (collective, except VELOC_Recover_size) ---------------------------------- */

/* The newest version v of checkpoint `name` with v < `version` (`version` = 0: no bound),
 * or VELOC_FAILURE if there is none (also for a bad name or a negative version). Looks at
 * the lineage of branch `name` (the versions an uninterrupted run would have), committed
 * versions only (it waits for this run's async checkpoints first). */
int VELOC_Restart_test(const char *name, int version);

/* Begin restarting from version `version` of checkpoint `name`; fails if there is none.
 * The next checkpoints continue branch `name` with this version as their parent. */
int VELOC_Restart_begin(const char *name, int version);

/* Restore protected regions from the checkpoint: VELOC_RECOVER_ALL (every stored region;
 * each must be protected), VELOC_RECOVER_SOME (only `ids`), VELOC_RECOVER_REST (all but
 * `ids`). A plain region must be at least as large as what this rank saved (the saved bytes
 * are written at its start); a distributed region is filled from the global array with this
 * run's decomposition. Every region is checked before any byte is written. */
int VELOC_Recover_selective(int mode, int *ids, int id_count);
int VELOC_Recover_mem(void);      /* = VELOC_Recover_selective(VELOC_RECOVER_ALL, NULL, 0) */

/* Bytes saved under region `id` that this rank restores (plain regions; for a
 * distributed region the bytes of the whole global array), or -1 if the checkpoint has
 * no region `id` (or it cannot be restored on this rank count). Local; call between
 * VELOC_Restart_begin and VELOC_Restart_end. Saturates at INT_MAX. */
int VELOC_Recover_size(int id);

/* End the restart phase. */
int VELOC_Restart_end(int success);

/* VELOC_Restart_begin + VELOC_Recover_mem + VELOC_Restart_end(1). */
int VELOC_Restart(const char *name, int version);

#ifdef __cplusplus
}
#endif
#endif /* VLCC_VELOC_H */
