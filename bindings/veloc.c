/* libvlcc: VeloC's memory-based API (include/veloc.h). Compiled into libvlcc after
 * libvlcc.c (same translation unit: vlcc__boot and the error buffer are shared). Each
 * function starts the embedded Python if needed and forwards to vlcc/capi/veloc.py; any
 * vlcc error becomes VELOC_FAILURE, with the reason on stderr and in vlcc_last_error(). */
#include <limits.h>
#include "veloc.h"

static int veloc__fail(const char *fn, int rc)
{
    if (rc == VLCC_OK) return VELOC_SUCCESS;
    fprintf(stderr, "VELOC (vlcc): %s failed: %s\n", fn, vlcc_last_error());
    fflush(stderr);
    return VELOC_FAILURE;
}

#define VELOC_CALL(fn, call) do { int rc_ = vlcc__boot(); \
    if (rc_ == VLCC_OK) { rc_ = (call); } \
    return veloc__fail(fn, rc_); } while (0)

int VELOC_Init(MPI_Comm comm, const char *cfg_file)
{
    VELOC_CALL("VELOC_Init", _veloc_py_init((long long)MPI_Comm_c2f(comm), cfg_file));
}

int VELOC_Init_single(unsigned int id, const char *cfg_file)
{
    VELOC_CALL("VELOC_Init_single", _veloc_py_init_single(id, cfg_file));
}

int VELOC_Finalize(int cleanup) { VELOC_CALL("VELOC_Finalize", _veloc_py_finalize(cleanup)); }

int VELOC_Mem_protect(int id, void *ptr, size_t count, size_t base_size)
{
    VELOC_CALL("VELOC_Mem_protect", _veloc_py_mem_protect(id, ptr, count, base_size));
}

int VELOC_Mem_protect_dist(int id, void *ptr, vlcc_dtype dtype, int ndim,
                           const int64_t *local_shape, const int64_t *global_shape,
                           const int64_t *offset, int halo)
{
    VELOC_CALL("VELOC_Mem_protect_dist",
               _veloc_py_mem_protect_dist(id, ptr, (int)dtype, ndim, local_shape, global_shape,
                                          offset, halo));
}

int VELOC_Mem_unprotect(int id) { VELOC_CALL("VELOC_Mem_unprotect", _veloc_py_mem_unprotect(id)); }

int VELOC_Mem_clear(void) { VELOC_CALL("VELOC_Mem_clear", _veloc_py_region_clear(NULL)); }

int VELOC_Region_protect(int id, void *ptr, size_t count, size_t base_size, const char *name)
{
    VELOC_CALL("VELOC_Region_protect", _veloc_py_region_protect(id, ptr, count, base_size,
                                                                name ? name : ""));
}

int VELOC_Region_unprotect(int id, const char *name)
{
    VELOC_CALL("VELOC_Region_unprotect", _veloc_py_region_unprotect(id, name ? name : ""));
}

int VELOC_Region_clear(const char *name)
{
    VELOC_CALL("VELOC_Region_clear", _veloc_py_region_clear(name ? name : ""));
}

int VELOC_Checkpoint_finished(void)
{
    int done = 0;
    int rc = vlcc__boot();
    if (rc == VLCC_OK) rc = _veloc_py_checkpoint_finished(&done);
    if (rc != VLCC_OK) return veloc__fail("VELOC_Checkpoint_finished", rc);
    return done ? VELOC_SUCCESS : VELOC_FAILURE;     /* still running: no message */
}

int VELOC_Cleanup(const char *name) { VELOC_CALL("VELOC_Cleanup", _veloc_py_cleanup(name)); }

int VELOC_Route_file(const char *original, char *routed)
{
    if (routed) routed[0] = '\0';
    VELOC_CALL("VELOC_Route_file", _veloc_py_route_file(original, routed));
}

int VELOC_Checkpoint_begin(const char *name, int version)
{
    VELOC_CALL("VELOC_Checkpoint_begin", _veloc_py_checkpoint_begin(name, version));
}

int VELOC_Checkpoint_selective(int mode, int *ids, int id_count)
{
    VELOC_CALL("VELOC_Checkpoint_selective", _veloc_py_checkpoint_selective(mode, ids, id_count));
}

int VELOC_Checkpoint_mem(void)
{
    VELOC_CALL("VELOC_Checkpoint_mem", _veloc_py_checkpoint_selective(VELOC_CKPT_ALL, NULL, 0));
}

int VELOC_Checkpoint_end(int success)
{
    VELOC_CALL("VELOC_Checkpoint_end", _veloc_py_checkpoint_end(success));
}

int VELOC_Checkpoint_wait(void) { VELOC_CALL("VELOC_Checkpoint_wait", _veloc_py_checkpoint_wait()); }

int VELOC_Checkpoint(const char *name, int version)
{
    /* Every step is entered on every rank (collective end), so a local failure in
     * begin/mem still reaches the agreement in end and fails there on all ranks. */
    int rc = vlcc__boot();
    if (rc != VLCC_OK) return veloc__fail("VELOC_Checkpoint", rc);
    int ok = 1;
    if (_veloc_py_checkpoint_begin(name, version) != VLCC_OK) {
        veloc__fail("VELOC_Checkpoint_begin", -1);
        return VELOC_FAILURE;   /* nothing begun: the same on every rank (same arguments) */
    }
    if (_veloc_py_checkpoint_selective(VELOC_CKPT_ALL, NULL, 0) != VLCC_OK) {
        veloc__fail("VELOC_Checkpoint_mem", -1);
        ok = 0;
    }
    rc = _veloc_py_checkpoint_end(ok);
    if (!ok) return VELOC_FAILURE;
    return veloc__fail("VELOC_Checkpoint", rc);
}

int VELOC_Restart_test(const char *name, int version)
{
    int64_t v = -1;
    int rc = vlcc__boot();
    if (rc == VLCC_OK) rc = _veloc_py_restart_test(name, version, &v);
    if (rc != VLCC_OK) return veloc__fail("VELOC_Restart_test", rc);
    return v < 0 ? VELOC_FAILURE : (v > INT_MAX ? INT_MAX : (int)v);
}

int VELOC_Restart_begin(const char *name, int version)
{
    VELOC_CALL("VELOC_Restart_begin", _veloc_py_restart_begin(name, version));
}

int VELOC_Recover_selective(int mode, int *ids, int id_count)
{
    VELOC_CALL("VELOC_Recover_selective", _veloc_py_recover_selective(mode, ids, id_count));
}

int VELOC_Recover_mem(void)
{
    VELOC_CALL("VELOC_Recover_mem", _veloc_py_recover_selective(VELOC_RECOVER_ALL, NULL, 0));
}

int VELOC_Recover_size(int id)
{
    int64_t n = -1;
    int rc = vlcc__boot();
    if (rc == VLCC_OK) rc = _veloc_py_recover_size(id, &n);
    if (rc != VLCC_OK) return veloc__fail("VELOC_Recover_size", rc);
    return n < 0 ? -1 : (n > INT_MAX ? INT_MAX : (int)n);
}

int VELOC_Restart_end(int success) { VELOC_CALL("VELOC_Restart_end", _veloc_py_restart_end(success)); }

int VELOC_Restart(const char *name, int version)
{
    int rc = vlcc__boot();
    if (rc == VLCC_OK) rc = _veloc_py_restart_begin(name, version);
    if (rc != VLCC_OK) return veloc__fail("VELOC_Restart_begin", rc);
    int rc2 = _veloc_py_recover_selective(VELOC_RECOVER_ALL, NULL, 0);
    if (rc2 != VLCC_OK) veloc__fail("VELOC_Recover_mem", rc2);
    rc = _veloc_py_restart_end(rc2 == VLCC_OK);
    return rc2 != VLCC_OK ? VELOC_FAILURE : veloc__fail("VELOC_Restart_end", rc);
}
