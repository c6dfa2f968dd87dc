"""vlcc on SLURM: preemption that checkpoints and requeues, job arrays that branch.

    Preemption(ck, signals=("USR1", "TERM"))   handlers only set a flag
        .should_stop() -> bool                 collective: one small allreduce
        .checkpoint_and_requeue(step, ...)     checkpoint, wait durable, requeue, exit
    RequeueExit                                SystemExit raised on every rank by the above
    task_branch(ck, base, name="task-{task}")  an array task's own branch, created at base once
    job_info() / requeue_job()                 the SLURM environment of this process

The batch-script side (trap and forward the signal, exit codes) is in
slurm/examples/ and README "On a cluster".
"""

from .env import job_info, requeue_job
from .preemption import Preemption, RequeueExit
from .arrays import task_branch

__all__ = ["Preemption", "RequeueExit", "task_branch", "job_info", "requeue_job"]
