/* ==== adjoint API (include/vlcc.h "Adjoint computations"; Python side: vlcc/capi/adjoint.py).
 * Appended to libvlcc.c by vlcc/capi/build/libvlcc.py: uses its VLCC_BOOT(). ==== */

int vlcc_adjoint_begin(const char *schedule, int n_steps, const char *options)
{
    VLCC_BOOT();
    return _vlcc_py_adjoint_begin(schedule, n_steps, options);
}

int vlcc_adjoint_next(int *action, int *n0, int *n1)
{
    VLCC_BOOT();
    return _vlcc_py_adjoint_next(action, n0, n1);
}
/* ==== end of the adjoint API ==== */
