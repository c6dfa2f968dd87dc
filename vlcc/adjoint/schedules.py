"""Schedules by name → checkpoint_schedules objects (what they compute is theirs).

    "revolve"     Revolve(n, ram)                          RAM only, binomial optimum
    "multistage"  MultistageCheckpointSchedule(n, ram, disk)  RAM + disk, optimal two-level
    "hrevolve"    HRevolve(n, ram, disk)                   RAM + disk, cost-aware
    "twolevel"    TwoLevelCheckpointSchedule(period, ram)  disk every ``period`` steps, binomial in RAM
    "online"      OnlineRevolve(ram)                       n unknown: thinning + revolve per interval
or any checkpoint_schedules.CheckpointSchedule instance (used as is).
"""

from __future__ import annotations

import math

from .errors import AdjointArgumentError
from .online import OnlineRevolve

NAMES = ("revolve", "multistage", "hrevolve", "twolevel", "online")


def _cs():
    try:
        import checkpoint_schedules
    except ImportError as exc:        # installed by `make setup` (extra "adjoint")
        raise AdjointArgumentError("vlcc.adjoint schedules need the checkpoint_schedules package "
                                   "(pip install 'vlcc[adjoint]')") from exc
    return checkpoint_schedules


def check_counts(n_steps, ram, disk) -> None:
    if n_steps is not None and (not isinstance(n_steps, int) or isinstance(n_steps, bool)
                                or n_steps < 1):
        raise AdjointArgumentError(f"adjoint: n_steps must be an int >= 1 (or None for an online "
                                   f"run), got {n_steps!r}")
    if not isinstance(ram, int) or isinstance(ram, bool) or ram < 1:
        raise AdjointArgumentError(f"adjoint: ram must be an int >= 1 (snapshots in memory, the "
                                   f"initial state included), got {ram!r}")
    if not isinstance(disk, int) or isinstance(disk, bool) or disk < 0:
        raise AdjointArgumentError(f"adjoint: disk must be an int >= 0 (snapshots on disk), "
                                   f"got {disk!r}")


def make(schedule, n_steps: int | None, ram: int, disk: int, options: dict):
    """A schedule object for ``schedule`` (a name or a CheckpointSchedule)."""
    check_counts(n_steps, ram, disk)
    opts = dict(options)
    if not isinstance(schedule, str):
        cs = _cs()
        if not isinstance(schedule, cs.CheckpointSchedule):
            raise AdjointArgumentError(f"adjoint: schedule must be one of {', '.join(NAMES)} or a "
                                       f"checkpoint_schedules.CheckpointSchedule, got "
                                       f"{type(schedule).__name__}")
        if schedule.is_running:
            raise AdjointArgumentError("adjoint: the schedule object was already iterated; pass "
                                       "a fresh one")
        if (n_steps is not None and schedule.max_n is not None and schedule.max_n != n_steps):
            raise AdjointArgumentError(f"adjoint: schedule is for {schedule.max_n} steps, "
                                       f"n_steps={n_steps}")
        if schedule.uses_storage_type(cs.StorageType.DISK) and disk < 1:
            raise AdjointArgumentError(
                f"adjoint: {type(schedule).__name__} stores snapshots on disk but disk=0: give "
                f"disk=<max disk snapshots> (the Checkpointer's repository is the disk tier)")
        return schedule
    name = schedule.lower()
    if name == "online":
        if disk:
            raise AdjointArgumentError("adjoint: the online schedule keeps its snapshots in RAM; "
                                       f"disk={disk} is not supported (use disk=0)")
        _cs()     # its reverse sweep uses Revolve per interval
        return OnlineRevolve(ram)
    if n_steps is None:
        if name != "twolevel":
            raise AdjointArgumentError(f"adjoint: schedule {name!r} needs n_steps; use "
                                       f"schedule='online' (or 'twolevel') when the number of "
                                       f"steps is not known")
    cs = _cs()
    if name == "revolve":
        if disk:
            raise AdjointArgumentError(f"adjoint: 'revolve' keeps every snapshot in RAM; for "
                                       f"disk={disk} use schedule='multistage' or 'hrevolve'")
        return cs.Revolve(n_steps, ram, **opts)
    if name == "multistage":
        if disk < 1 and n_steps > ram:
            pass      # multistage with RAM only is revolve: allowed
        return cs.MultistageCheckpointSchedule(n_steps, ram, disk, **opts)
    if name == "hrevolve":
        if disk < 1:
            raise AdjointArgumentError("adjoint: 'hrevolve' is a RAM + disk schedule: give disk >= 1 "
                                       "(or use 'revolve')")
        return cs.HRevolve(n_steps, ram, disk, **opts)
    if name == "twolevel":
        if disk < 1:
            raise AdjointArgumentError("adjoint: 'twolevel' stores a disk snapshot every `period` "
                                       "steps: give disk >= 1 (the most it may hold)")
        period = opts.pop("period", None)
        if period is None:
            if n_steps is None:
                raise AdjointArgumentError("adjoint: 'twolevel' without n_steps needs period=...")
            period = max(1, math.ceil(n_steps / disk))
        opts.setdefault("binomial_storage", cs.StorageType.RAM)
        return cs.TwoLevelCheckpointSchedule(int(period), ram, **opts)
    raise AdjointArgumentError(f"adjoint: unknown schedule {schedule!r}; use one of "
                               f"{', '.join(NAMES)} or a checkpoint_schedules schedule")
