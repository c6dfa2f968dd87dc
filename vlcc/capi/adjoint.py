"""The Python side of the adjoint C API (include/vlcc.h, "Adjoint computations";
bindings/adjoint.c): ``vlcc_adjoint_begin`` starts a vlcc.adjoint.Adjoint on the
buffers registered through libvlcc, ``vlcc_adjoint_next`` hands the program its
next action while the library stores and restores the registered buffers itself.

    vlcc_adjoint_begin("revolve", n_steps, "ram=10;disk=0")
    do { vlcc_adjoint_next(&action, &n0, &n1);
         FORWARD: advance the buffers n0 -> n1 (the first FORWARD with n1 == n_steps
                  ends the forward sweep: the buffers hold u_N, set the final adjoint)
         REVERSE: adjoint step n0 (buffers hold u_n0)
    } while (action != VLCC_ADJ_DONE);
"""

from __future__ import annotations

from . import _ffi, options, process
from . import codes as C
from .codes import CapiError

ADJ_DONE, ADJ_FORWARD, ADJ_REVERSE = 0, 1, 2

DECLS = """
int _vlcc_py_adjoint_begin(const char *schedule, int n_steps, const char *options);
int _vlcc_py_adjoint_next(int *action, int *n0, int *n1);
"""

_st: dict = {"ad": None, "pending": None}


def begin(sched_p, n_steps, opts_p):
    ck = process.require()
    if _st["ad"] is not None:
        raise CapiError(C.ESTATE, "vlcc_adjoint_begin: an adjoint run is in progress (call "
                                  "vlcc_adjoint_next until it returns VLCC_ADJ_DONE)")
    sched = _ffi.string(sched_p, "schedule")
    opts = options.ADJOINT.parse_string(_ffi.string(opts_p, "options", null_ok=True))
    if n_steps < 1:
        raise CapiError(C.EINVAL, f"vlcc_adjoint_begin: n_steps must be >= 1, got {n_steps}")
    from ..adjoint import Adjoint
    from ..adjoint.errors import AdjointArgumentError
    try:
        ad = Adjoint.stepped(ck, int(n_steps), schedule=sched, ram=opts.pop("ram", None),
                             disk=opts.pop("disk", 0), **opts)
    except AdjointArgumentError as exc:
        raise CapiError(C.EINVAL, str(exc)) from None
    _st["ad"], _st["pending"] = ad, None


def next_action(action_p, n0_p, n1_p):
    ad = _st["ad"]
    if ad is None:
        raise CapiError(C.ESTATE, "vlcc_adjoint_next: no adjoint run (call vlcc_adjoint_begin)")
    if any(_ffi.is_null(p) for p in (action_p, n0_p, n1_p)):
        raise CapiError(C.EINVAL, "vlcc_adjoint_next: action, n0 and n1 must not be NULL")
    prev = _st["pending"]
    if prev is not None and prev[0] == "forward":
        # The program did the steps it was asked for (libvlcc cannot see them).
        ad.reply(prev[2] - prev[1])
        ad.stats["forward_steps"] += prev[2] - prev[1]
    elif prev is not None and prev[0] == "reverse":
        ad.stats["reverse_steps"] += 1
    _st["pending"] = None
    try:
        while True:
            req = ad.next_request()
            if req is None or req[0] != "end_forward":
                break
    except BaseException:
        _st["ad"] = None
        raise
    if req is None:
        _st["ad"] = None
        action_p[0], n0_p[0], n1_p[0] = ADJ_DONE, 0, 0
    elif req[0] == "forward":
        action_p[0], n0_p[0], n1_p[0] = ADJ_FORWARD, req[1], req[2]
    else:
        action_p[0], n0_p[0], n1_p[0] = ADJ_REVERSE, req[1], req[1] + 1
    _st["pending"] = req


IMPL = {"adjoint_begin": begin, "adjoint_next": next_action}


def current():
    """The adjoint run libvlcc drives in this process (or None)."""
    return _st["ad"]
