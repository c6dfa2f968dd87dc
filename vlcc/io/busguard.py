"""A data file truncated while vlcc reads it through a mapping is a
CorruptionError, never a SIGBUS that kills the process (issue 32, item 4).

Touching a mapped page beyond the end of a file raises SIGBUS, and a file can
be truncated by another process at any moment between a size check and the
access, so no check before the read closes the window. Instead a small C
SIGBUS handler (compiled once with the C compiler, ``$CC`` or ``cc``, into
``VLCC_CACHE_DIR``, default ``~/.cache/vlcc``; loaded with cffi) covers the
mappings vlcc registers here (``guard``): a fault inside one is answered by
mapping a zero page over the missing one and counting it (``hits``), so the
copy or hash that faulted completes; the reader then sees the count (or a
checksum mismatch) and raises CorruptionError naming the file. A SIGBUS at any
other address goes to the handler that was there before (Python's
faulthandler, or the default action), as without vlcc.

Where the handler cannot be built (no C compiler), ``available()`` is False
and readers do not map data files (reads go through ADIOS2, which reports a
short read)."""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
import threading

from .. import settings

_CDEF = """
int vlcc_bus_install(void);
int vlcc_bus_guard(uintptr_t start, size_t n);
void vlcc_bus_unguard(int slot);
long vlcc_bus_hits(int slot);
"""

_SRC = r"""
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define SLOTS 1024
static volatile uintptr_t lo_[SLOTS], hi_[SLOTS];
static volatile long hits_[SLOTS];
static volatile int used_[SLOTS];
static struct sigaction prev_;
static int installed_;
static long page_;

static void on_bus(int sig, siginfo_t *si, void *uc) {
    uintptr_t a = (uintptr_t)si->si_addr;
    for (int i = 0; i < SLOTS; i++) {
        if (a >= lo_[i] && a < hi_[i]) {
            void *p = (void *)(a & ~(uintptr_t)(page_ - 1));
            if (mmap(p, (size_t)page_, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                     -1, 0) != MAP_FAILED) {
                __atomic_add_fetch(&hits_[i], 1, __ATOMIC_SEQ_CST);
                return;       /* the faulting access runs again, on the zero page */
            }
            break;
        }
    }
    /* not a guarded mapping: what would have happened without vlcc */
    if (prev_.sa_flags & SA_SIGINFO) {
        if (prev_.sa_sigaction) { prev_.sa_sigaction(sig, si, uc); return; }
    } else if (prev_.sa_handler != SIG_DFL && prev_.sa_handler != SIG_IGN) {
        prev_.sa_handler(sig);
        return;
    }
    signal(sig, SIG_DFL);     /* the access faults again: the default action */
}

int vlcc_bus_install(void) {
    struct sigaction sa;
    if (installed_) return 0;
    page_ = sysconf(_SC_PAGESIZE);
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_bus;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGBUS, &sa, &prev_) != 0) return -1;
    installed_ = 1;
    return 0;
}

/* callers serialize guard/unguard (a Python lock); the handler reads lock-free:
   a slot is live once hi_ is set, dead once it is cleared */
int vlcc_bus_guard(uintptr_t start, size_t n) {
    for (int i = 0; i < SLOTS; i++) {
        if (!used_[i]) {
            used_[i] = 1;
            hits_[i] = 0;
            lo_[i] = start;
            __atomic_store_n(&hi_[i], start + n, __ATOMIC_SEQ_CST);
            return i;
        }
    }
    return -1;
}

void vlcc_bus_unguard(int slot) {
    if (slot < 0 || slot >= SLOTS) return;
    __atomic_store_n(&hi_[slot], 0, __ATOMIC_SEQ_CST);
    lo_[slot] = 0;
    used_[slot] = 0;
}

long vlcc_bus_hits(int slot) {
    return (slot < 0 || slot >= SLOTS) ? 0 : __atomic_load_n(&hits_[slot], __ATOMIC_SEQ_CST);
}
"""

_LOCK = threading.RLock()     # re-entrant: Guard.close may run from a GC finalizer
_LIB = None
_FFI = None       # keeps the library loaded
_TRIED = False


def _cache_dir() -> str:
    base = settings.get("VLCC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "vlcc")
    return base


def _build():
    """The handler as a plain shared library (only a C compiler needed, no
    Python headers), loaded with cffi's ABI mode: from the cache, built there
    if missing (in a private temporary directory, then renamed: concurrent
    ranks are safe)."""
    from cffi import FFI
    tag = hashlib.sha256((_CDEF + _SRC).encode()).hexdigest()[:16]
    d = _cache_dir()
    os.makedirs(d, exist_ok=True)
    final = os.path.join(d, f"libvlcc_busguard_{tag}.so")
    if not os.path.exists(final):
        tmp = tempfile.mkdtemp(prefix="build-", dir=d)
        try:
            src = os.path.join(tmp, "busguard.c")
            with open(src, "w") as f:
                f.write(_SRC)
            out = os.path.join(tmp, "busguard.so")
            cc = shlex.split(os.environ.get("CC") or "cc")
            subprocess.run(cc + ["-O2", "-shared", "-fPIC", "-o", out, src],
                           check=True, capture_output=True, timeout=120)
            os.replace(out, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    ffi = FFI()
    ffi.cdef(_CDEF)
    lib = ffi.dlopen(final)
    if lib.vlcc_bus_install() != 0:
        raise OSError("sigaction(SIGBUS) failed")
    return ffi, lib


def _lib():
    global _FFI, _LIB, _TRIED
    with _LOCK:
        if not _TRIED:
            _TRIED = True
            if settings.get("VLCC_MAP_READS") != "0":
                try:
                    _FFI, _LIB = _build()
                except Exception:   # noqa: BLE001 - no compiler, no cache dir: unmapped reads
                    _LIB = None
        return _LIB


def available() -> bool:
    """Can mapped reads be guarded in this process (else: do not map)?"""
    return _lib() is not None


class Guard:
    """A guarded address range (a mapping of a data file), until ``close``."""

    def __init__(self, start: int, n: int):
        lib = _lib()
        self._slot = -1
        if lib is not None and n:
            with _LOCK:
                self._slot = lib.vlcc_bus_guard(start, n)
        self.ok = self._slot >= 0 or not n

    def hits(self) -> int:
        """Pages that were missing (file truncated) when touched."""
        return 0 if self._slot < 0 else int(_LIB.vlcc_bus_hits(self._slot))

    def close(self) -> None:
        if self._slot >= 0:
            with _LOCK:
                _LIB.vlcc_bus_unguard(self._slot)
            self._slot = -1
