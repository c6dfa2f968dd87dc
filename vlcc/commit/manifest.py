"""Rank 0's part of a commit: the manifest of a version from every rank's
write result (docs/format.md, section 4)."""

from __future__ import annotations

import os
import sys
import time

from .._version import __version__
from ..repo.manifest import MANIFEST_VERSION
from ..repo.records import Kind


def slurm_info() -> dict:
    keys = {"SLURM_JOB_ID": "job_id", "SLURM_ARRAY_JOB_ID": "array_job_id",
            "SLURM_ARRAY_TASK_ID": "array_task_id", "SLURM_JOB_NAME": "job_name",
            "SLURM_RESTART_COUNT": "restart_count", "SLURM_CLUSTER_NAME": "cluster"}
    return {v: os.environ[k] for k, v in keys.items() if k in os.environ}


def provisional(pend, nranks: int) -> dict:
    """What a pending (async, not yet committed) version looks like."""
    return {"vlcc_manifest": MANIFEST_VERSION, "id": pend.vid, "parent": pend.parent,
            "branch": pend.branch, "step": pend.step, "message": pend.message,
            "time": pend.t0, "nranks": nranks, "attrs": pend.attrs, "hosts": [],
            "slurm": slurm_info(), "run": {}, "providers": {}, "pending": True}


def build(pend, results: list[dict], *, mode: str, chunk_size: int) -> dict:
    """The manifest of ``pend`` from every rank's write result (index = rank)."""
    all_descs = pend.all_descs
    providers: dict[str, dict] = {}
    for name, d in all_descs[0]:
        e = {k: v for k, v in d.items() if k not in ("offset", "shape")}
        if d["kind"] != Kind.DISTRIBUTED:
            e["shape"] = d["shape"]
        e["blocks"] = []
        providers[name] = e
    for rank, res in enumerate(results):
        for name, d in all_descs[rank]:
            s = res["leaves"][name]
            b = {"rank": rank, "shape": d["shape"], "nbytes": s["nbytes"], "digest": s["digest"]}
            if d["kind"] == Kind.DISTRIBUTED:
                b["offset"] = d["offset"]
            if "pack" in s:
                b["pack"] = s["pack"]
            providers[name]["blocks"].append(b)
    for e in providers.values():
        e["replicated"] = len({b["digest"] for b in e["blocks"]}) == 1 and \
            len({tuple(b["shape"]) for b in e["blocks"]}) == 1
    return {
        "vlcc_manifest": MANIFEST_VERSION, "id": pend.vid, "parent": pend.parent,
        "branch": pend.branch, "step": pend.step,
        "message": pend.message, "time": pend.t0, "nranks": len(results),
        "attrs": pend.attrs, "hosts": sorted({r["host"] for r in results}),
        "slurm": slurm_info(),
        "run": {"vlcc": __version__, "python": sys.version.split()[0],
                "mode": mode, "seconds": round(time.time() - pend.t0, 6),
                "chunk_size": chunk_size},
        "providers": providers,
        "ranks": [{"rank": i, "index": r["index"], "index_checksum": r["index_checksum"],
                   "host": r["host"]} for i, r in enumerate(results)],
    }
