"""Adjoint computations: revolve-style checkpoint schedules executed on vlcc's tiers.

    from vlcc.adjoint import Adjoint
    ad = Adjoint(ck, forward, reverse, n_steps, schedule="revolve", ram=10, disk=0)
    ad.run_forward(); ...set the final adjoint condition...; ad.run_reverse()

Modules: ``schedules`` (names → checkpoint_schedules objects), ``online`` (online
revolve), ``executor`` (walks a schedule; yields forward/reverse requests),
``storage`` (RAM snapshots, disk snapshots as versions), ``driver`` (``Adjoint``),
``_state`` (the only use of core internals). See docs/adjoint.md.
"""

from .driver import Adjoint
from .errors import AdjointArgumentError, AdjointError

__all__ = ["Adjoint", "AdjointError", "AdjointArgumentError"]
