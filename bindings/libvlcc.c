/* libvlcc: the exported C functions of vlcc.h (compiled into libvlcc by cffi's embedding
 * mode, see vlcc/capi/build/libvlcc.py). Each is a thin check-and-forward: it starts the embedded
 * Python once, refuses to pretend success when that failed (VLCC_EINIT + traceback), and
 * forwards to the Python implementation in vlcc/capi/core.py (the _vlcc_py_* functions). */
#include <string.h>
#include <stdio.h>
#include "vlcc.h"

static int vlcc__ready = 0;          /* 1 once the init code has bound every _vlcc_py_* */
static int vlcc__booted = 0;         /* 1 once the interpreter start was attempted */
static char vlcc__err[16384] = "";

void _vlcc_set_ready(int r) { vlcc__ready = r; }

void _vlcc_set_error(const char *msg)
{
    if (msg == NULL) { vlcc__err[0] = '\0'; return; }
    strncpy(vlcc__err, msg, sizeof vlcc__err - 1);
    vlcc__err[sizeof vlcc__err - 1] = '\0';
}

const char *vlcc_last_error(void) { return vlcc__err; }

const char *vlcc_strerror(int code)
{
    switch (code) {
    case VLCC_OK: return "VLCC_OK";
    case VLCC_EINIT: return "VLCC_EINIT";
    case VLCC_ESTATE: return "VLCC_ESTATE";
    case VLCC_EINVAL: return "VLCC_EINVAL";
    case VLCC_ENOTFOUND: return "VLCC_ENOTFOUND";
    case VLCC_EMISMATCH: return "VLCC_EMISMATCH";
    case VLCC_EPROVIDER: return "VLCC_EPROVIDER";
    case VLCC_ECORRUPT: return "VLCC_ECORRUPT";
    case VLCC_ESTORAGE: return "VLCC_ESTORAGE";
    case VLCC_EREPO: return "VLCC_EREPO";
    case VLCC_EEXISTS: return "VLCC_EEXISTS";
    case VLCC_ECOLLECTIVE: return "VLCC_ECOLLECTIVE";
    case VLCC_ETRUNC: return "VLCC_ETRUNC";
    case VLCC_EUNSUPPORTED: return "VLCC_EUNSUPPORTED";
    case VLCC_EINTERNAL: return "VLCC_EINTERNAL";
    default: return "VLCC_E?";
    }
}

/* Start Python (first call only) and report whether vlcc's Python side is usable. */
static int vlcc__boot(void)
{
    if (vlcc__ready) return VLCC_OK;
    if (!vlcc__booted) {
        vlcc__booted = 1;
        if (!Py_IsInitialized()) {
            /* Start Python as the interpreter libvlcc was built with (a venv's python
             * included): its stdlib and site-packages are found with no PYTHONHOME,
             * PYTHONPATH or PATH set by the user. */
            PyConfig config;
            PyStatus st;
            PyConfig_InitPythonConfig(&config);
            config.install_signal_handlers = 0;
            st = PyConfig_SetBytesString(&config, &config.program_name, VLCC_PYTHON_EXE);
            if (!PyStatus_Exception(st))
                st = Py_InitializeFromConfig(&config);
            PyConfig_Clear(&config);
            if (PyStatus_Exception(st)) {
                char msg[1024];
                snprintf(msg, sizeof msg, "VLCC_EINIT: libvlcc could not start Python (%s): %s",
                         VLCC_PYTHON_EXE, st.err_msg ? st.err_msg : "unknown error");
                _vlcc_set_error(msg);
                return VLCC_EINIT;
            }
            PyEval_SaveThread();  /* cffi takes the GIL when it calls into Python */
        }
        _vlcc_py_boot();          /* runs the init code; cffi returns 0 if it raised */
    }
    if (!vlcc__ready) {
        if (vlcc__err[0] == '\0')
            _vlcc_set_error("libvlcc: the embedded Python interpreter failed to start "
                            "(see the traceback cffi printed on stderr)");
        return VLCC_EINIT;
    }
    return VLCC_OK;
}

#define VLCC_BOOT() do { int rc_ = vlcc__boot(); if (rc_) return rc_; } while (0)

int vlcc_init(const char *repo_path, MPI_Comm comm, const char *options)
{
    VLCC_BOOT();
    return _vlcc_py_init(repo_path, (long long)MPI_Comm_c2f(comm), options);
}

int vlcc_init_f(const char *repo_path, MPI_Fint fcomm, const char *options)
{
    VLCC_BOOT();
    return _vlcc_py_init(repo_path, (long long)fcomm, options);
}

int vlcc_register_ex(const char *name, void *data, vlcc_dtype dtype, int ndim,
                     const int64_t *local_shape, const int64_t *global_shape,
                     const int64_t *offset, int halo, int flags)
{
    VLCC_BOOT();
    return _vlcc_py_register(name, data, (int)dtype, ndim, local_shape, global_shape,
                             offset, halo, flags);
}

int vlcc_register(const char *name, void *data, vlcc_dtype dtype, int ndim,
                  const int64_t *local_shape, const int64_t *global_shape,
                  const int64_t *offset, int halo)
{
    return vlcc_register_ex(name, data, dtype, ndim, local_shape, global_shape, offset,
                            halo, VLCC_ORDER_C);
}

int vlcc_unregister(const char *name) { VLCC_BOOT(); return _vlcc_py_unregister(name); }

int vlcc_checkpoint(int64_t step, const char *message, char *version_id, size_t id_len)
{
    VLCC_BOOT();
    return _vlcc_py_checkpoint(step, message, version_id, id_len);
}

int vlcc_restore(const char *version) { VLCC_BOOT(); return _vlcc_py_restore(version); }

int vlcc_query(const char *version, char *version_id, size_t id_len, int64_t *step)
{
    VLCC_BOOT();
    return _vlcc_py_query(version, version_id, id_len, step);
}

/* The same operation under the name Python (Repository.resolve) and the CLI (vlcc resolve) use. */
int vlcc_resolve(const char *version, char *version_id, size_t id_len, int64_t *step)
{
    return vlcc_query(version, version_id, id_len, step);
}

int vlcc_branch(const char *name, const char *at) { VLCC_BOOT(); return _vlcc_py_branch(name, at); }
int vlcc_switch(const char *name, int create) { VLCC_BOOT(); return _vlcc_py_switch(name, create); }
int vlcc_tag(const char *name, const char *version) { VLCC_BOOT(); return _vlcc_py_tag(name, version); }
int vlcc_wait(void) { VLCC_BOOT(); return _vlcc_py_wait(); }
int vlcc_finalize(void) { VLCC_BOOT(); return _vlcc_py_finalize(); }
