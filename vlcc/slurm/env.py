"""The SLURM side of this process: job ids from the environment, ``scontrol requeue``."""

from __future__ import annotations

import os
import shutil
import subprocess


def job_info(environ: dict | None = None) -> dict:
    """Job id, array job and task ids, restart count of the current job (str values;
    absent keys when not in a SLURM job). The same names vlcc records in a version's
    lineage (``Version.slurm``)."""
    env = os.environ if environ is None else environ
    keys = {"SLURM_JOB_ID": "job_id", "SLURM_ARRAY_JOB_ID": "array_job_id",
            "SLURM_ARRAY_TASK_ID": "array_task_id", "SLURM_RESTART_COUNT": "restart_count"}
    return {v: env[k] for k, v in keys.items() if env.get(k)}


def _scontrol(exe: str, args: list[str], timeout: float) -> tuple[int, str]:
    try:
        res = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return -1, str(exc)
    return res.returncode, (res.stdout if res.returncode == 0 else (res.stderr or res.stdout)).strip()


def job_state(job_id: str, exe: str = "scontrol", timeout: float = 60.0) -> str | None:
    """``JobState`` of a job as scontrol reports it (RUNNING, COMPLETING, ...), or None."""
    rc, out = _scontrol(exe, ["show", "job", "-o", str(job_id)], timeout)
    if rc != 0:
        return None
    for word in out.split():
        if word.startswith("JobState="):
            return word.split("=", 1)[1]
    return None


def requeue_job(job_id: str | None = None, timeout: float = 60.0) -> tuple[str, str]:
    """Requeue a running job (default ``$SLURM_JOB_ID``) with ``scontrol requeue``.

    Returns ``(outcome, detail)``:

    * ``"requeued"`` — SLURM accepted it;
    * ``"ending"`` — the job is no longer RUNNING: it is being cancelled (``scancel``
      sends SIGTERM too) or killed at its time limit. Requeueing would undo the
      user's cancel, so it is left alone (a warning signal, ``--signal=B:USR1@N``,
      arrives while the job is still RUNNING);
    * ``"failed"`` — not in a SLURM job, no ``scontrol`` on PATH (e.g. inside a
      container), or scontrol refused (e.g. a ``--no-requeue`` job).

    Never raises: the caller decides how to exit."""
    job_id = job_id or os.environ.get("SLURM_JOB_ID")
    if not job_id:
        return "failed", "not in a SLURM job (SLURM_JOB_ID is not set)"
    exe = shutil.which("scontrol")
    if exe is None:
        return "failed", "scontrol not found on PATH"
    state = job_state(job_id, exe, timeout)
    if state is not None and state != "RUNNING":
        return "ending", f"job {job_id} is {state} (cancelled or out of time): not requeued"
    rc, out = _scontrol(exe, ["requeue", str(job_id)], timeout)
    if rc != 0:
        return "failed", f"scontrol requeue {job_id}: {out}"
    return "requeued", ""
