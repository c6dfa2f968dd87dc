"""Job arrays: every array task continues from one base version on its own branch."""

from __future__ import annotations

import os

from ..errors import RefExistsError, VlccError


def task_branch(ck, base, name: str = "task-{task}", *, task: int | str | None = None):
    """Collective. Switch ``ck`` to this array task's own branch and restore its head.

    The branch name is ``name.format(task=..., job=...)`` with ``task`` =
    ``$SLURM_ARRAY_TASK_ID`` (or the ``task`` argument, e.g. to run one task
    outside SLURM) and ``job`` = ``$SLURM_ARRAY_JOB_ID``. The first time, the branch
    is created at ``base`` (a Version, an id, ``tag:NAME``, ``branch:NAME``); after a
    requeue it already exists and the task resumes from its newest version.
    Branch creation is an exclusive create of one ref file, so many tasks
    creating their branches at once are safe; a task that finds its branch
    already there (requeued, or created a moment ago by a twin) just uses it.
    Returns the restored :class:`vlcc.Version`."""
    if task is None:
        task = os.environ.get("SLURM_ARRAY_TASK_ID")
        if task is None:
            raise VlccError("task_branch: not in a SLURM array task (SLURM_ARRAY_TASK_ID is "
                            "not set); pass task=N to run one task directly")
    job = os.environ.get("SLURM_ARRAY_JOB_ID", "")
    try:
        branch = name.format(task=task, job=job)
    except (KeyError, IndexError, ValueError) as exc:
        raise VlccError(f"task_branch: bad branch name pattern {name!r} (fields: {{task}}, "
                        f"{{job}}): {exc}") from None
    try:
        ck.branch(branch, at=base)
    except RefExistsError:
        pass   # resumes: the branch head is this task's newest checkpoint
    ck.switch(branch)
    return ck.restore()
