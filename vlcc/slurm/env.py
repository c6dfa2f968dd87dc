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


def requeue_job(job_id: str | None = None, timeout: float = 60.0) -> tuple[bool, str]:
    """Run ``scontrol requeue JOB`` (default: ``$SLURM_JOB_ID``).

    Returns ``(True, "")`` when SLURM accepted it, else ``(False, reason)``: not in a
    SLURM job, no ``scontrol`` on PATH (e.g. inside a container), or scontrol's
    error. Never raises: the caller decides how to exit."""
    job_id = job_id or os.environ.get("SLURM_JOB_ID")
    if not job_id:
        return False, "not in a SLURM job (SLURM_JOB_ID is not set)"
    exe = shutil.which("scontrol")
    if exe is None:
        return False, "scontrol not found on PATH"
    try:
        res = subprocess.run([exe, "requeue", str(job_id)], capture_output=True, text=True,
                             timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"scontrol requeue {job_id}: {exc}"
    if res.returncode != 0:
        return False, f"scontrol requeue {job_id}: {(res.stderr or res.stdout).strip()}"
    return True, ""
