"""The Python side of the VeloC-compatible API (include/veloc.h, bindings/veloc.c).

VeloC's memory-based model maps onto vlcc like this:

* ``VELOC_Init(comm, cfg)``: the INI file's ``persistent`` is the repository,
  ``scratch`` the node-local tier (``Checkpointer(local_dir=...)``), ``mode`` =
  sync/async (``Checkpointer(mode=...)``). No backend process is started.
* ``VELOC_Init_single(id, cfg)``: a non-MPI process checkpoints alone, on the one-rank
  stand-in (vlcc.comm.serial, no MPI library needed); its checkpoint ``name`` is the branch
  ``<name>.<id>``, so processes sharing a repository never mix their checkpoints.
* a protected region ``id`` is the provider ``veloc/<id>``: raw bytes of one rank
  (``VELOC_Mem_protect``) or a block of a distributed array
  (``VELOC_Mem_protect_dist``, restorable on another rank count).
* regions by name, as VeloC: ``VELOC_Region_protect(id, ..., name)`` registers a region for
  checkpoint ``name`` only; a checkpoint or restart of ``name`` uses the regions registered
  under ``name`` if there are any, else the unnamed ones (``VELOC_Mem_protect``).
  ``VELOC_Region_unprotect``/``VELOC_Region_clear(name)`` and ``VELOC_Mem_unprotect``/
  ``VELOC_Mem_clear()`` forget them (stored versions are never touched).
* checkpoint ``name`` is a vlcc branch, ``version`` the version's step.
* the checkpoint is captured and committed at ``VELOC_Checkpoint_end(1)``; a
  ``VELOC_Checkpoint_end(0)`` on any rank discards it on all ranks.

Every function here is collective or local exactly as documented in veloc.h and
returns 0 or raises (the C wrapper turns an exception into VELOC_FAILURE and the
message into ``vlcc_last_error()``).
"""

from __future__ import annotations

from .checkpoint import (checkpoint_begin, checkpoint_end, checkpoint_finished,  # noqa: F401
                         checkpoint_selective, checkpoint_wait, cleanup)
from .regions import (mem_protect, mem_protect_dist, mem_unprotect, region_clear,  # noqa: F401
                      region_protect, region_unprotect)
from .restart import (recover_selective, recover_size, restart_begin, restart_end,  # noqa: F401
                      restart_test)
from .session import FAILURE, PREFIX, RECOVER_ALL, RECOVER_REST, RECOVER_SOME  # noqa: F401
from .setup import (finalize, init, init_single, parse_config,  # noqa: F401
                    redundancy_options, route_file)

IMPL = {"init": init, "init_single": init_single, "mem_protect": mem_protect,
         "mem_protect_dist": mem_protect_dist, "mem_unprotect": mem_unprotect,
         "region_protect": region_protect, "region_unprotect": region_unprotect,
         "region_clear": region_clear, "checkpoint_finished": checkpoint_finished,
         "cleanup": cleanup, "checkpoint_begin": checkpoint_begin,
         "checkpoint_selective": checkpoint_selective, "checkpoint_end": checkpoint_end,
         "checkpoint_wait": checkpoint_wait, "restart_test": restart_test,
         "restart_begin": restart_begin, "recover_selective": recover_selective,
         "recover_size": recover_size, "restart_end": restart_end, "route_file": route_file,
         "finalize": finalize}

# The Python functions libvlcc calls (cffi embedding_api). Changing these needs a rebuild:
# touch bindings/veloc.c (its mtime makes `build_libvlcc.py --if-stale` rebuild).
DECLS = """
int _veloc_py_init(long long fcomm, const char *cfg);
int _veloc_py_mem_protect(int id, void *ptr, size_t count, size_t base_size);
int _veloc_py_mem_protect_dist(int id, void *ptr, int dtype, int ndim, const int64_t *local_shape,
                               const int64_t *global_shape, const int64_t *offset, int halo);
int _veloc_py_mem_unprotect(int id);
int _veloc_py_init_single(unsigned int id, const char *cfg);
int _veloc_py_region_protect(int id, void *ptr, size_t count, size_t base_size, const char *name);
int _veloc_py_region_unprotect(int id, const char *name);
int _veloc_py_region_clear(const char *name);
int _veloc_py_checkpoint_finished(int *out);
int _veloc_py_cleanup(const char *name);
int _veloc_py_checkpoint_begin(const char *name, int version);
int _veloc_py_checkpoint_selective(int mode, const int *ids, int n);
int _veloc_py_checkpoint_end(int success);
int _veloc_py_checkpoint_wait(void);
int _veloc_py_restart_test(const char *name, int version, int64_t *out);
int _veloc_py_restart_begin(const char *name, int version);
int _veloc_py_recover_selective(int mode, const int *ids, int n);
int _veloc_py_recover_size(int id, int64_t *out);
int _veloc_py_restart_end(int success);
int _veloc_py_route_file(const char *original, char *routed);
int _veloc_py_finalize(int cleanup);
"""

