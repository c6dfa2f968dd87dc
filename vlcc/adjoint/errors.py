"""Errors of vlcc.adjoint (all are vlcc.VlccError subclasses)."""

from __future__ import annotations

from ..errors import VlccError


class AdjointError(VlccError):
    """An adjoint run went wrong (schedule inconsistent with the executor, a step
    raised on some rank, reverse sweep before the forward sweep, ...)."""


class AdjointArgumentError(AdjointError, ValueError):
    """Bad argument to vlcc.adjoint (n_steps < 1, ram < 1, unknown schedule, disk
    snapshots without a disk tier, ...): catchable as ValueError too."""
