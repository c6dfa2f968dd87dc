"""Where the time of a restore goes, per stage (``benchmarks/bench_restore.py
--profile`` prints it per rank; docs/architecture.md keeps the last table).

Off by default: ``stage(name)`` then costs one global lookup. When on
(``enable()``), every moment of a restore is charged to the innermost open
stage, so the stages add up to the wall time of the restore:

* ``planning``: everything not named below (Python geometry, dispatch);
* ``index``: manifest/rank index loads and their checks;
* ``bp5 metadata``: the BP5 metadata checksums (and ADIOS2 opens);
* ``collectives``: time inside MPI (including waiting for other ranks);
* ``mapping``: mmap/munmap of data files;
* ``checksum``: xxh3 over bytes already in cache (verify-only passes);
* ``copy``: copy-and-hash passes out of the page cache (page faults land here);
* ``scatter``: strided copies of tiled pieces into their boxes;
* ``staging``: staging copies into the application's arrays (phase 2).

Page faults (minor and major, of the calling thread) are counted too."""

from __future__ import annotations

import resource
import threading
import time

STAGES = ("planning", "index", "bp5 metadata", "collectives", "mapping", "checksum", "copy",
          "scatter", "staging")

_acc: dict | None = None          # stage -> seconds, while enabled
_stack: list = []                 # open stages, innermost last
_since = 0.0                      # when the innermost stage was last charged
_faults = (0, 0)
_owner = 0                        # only the thread that enabled it is accounted


def enable(on: bool = True) -> None:
    """Start (or stop) accounting; clears what was accounted."""
    global _acc, _faults, _owner
    _acc = {s: 0.0 for s in STAGES} if on else None
    _owner = threading.get_ident()
    _stack.clear()
    _faults = _rusage()


def enabled() -> bool:
    return _acc is not None


def _rusage() -> tuple[int, int]:
    who = getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)
    r = resource.getrusage(who)
    return r.ru_minflt, r.ru_majflt


def take() -> dict:
    """The seconds per stage and the page faults since ``enable`` (then reset)."""
    global _faults
    if _acc is None:
        return {}
    out = dict(_acc)
    mi, ma = _rusage()
    out["minor faults"], out["major faults"] = mi - _faults[0], ma - _faults[1]
    enable(True)
    return out


class stage:
    """``with stage("copy"): ...``: charge the time inside to ``copy``."""
    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        global _since
        if _acc is not None and threading.get_ident() == _owner:
            now = time.perf_counter()
            if _stack:
                _acc[_stack[-1]] += now - _since
            _stack.append(self.name)
            _since = now
        return self

    def __exit__(self, *exc):
        global _since
        if _acc is not None and _stack and threading.get_ident() == _owner:
            now = time.perf_counter()
            _acc[_stack.pop()] += now - _since
            _since = now
        return False


def inside(name: str, fn):
    """``fn`` wrapped to run under stage ``name`` (e.g. the local part of a
    collective: ``agree(comm, inside("planning", fn))``)."""
    def run():
        with stage(name):
            return fn()
    return run
