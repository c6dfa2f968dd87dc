"""Rank 0's part of a commit: the manifest of a version from every rank's
write result (docs/format.md, section 4)."""

from __future__ import annotations

import os
import sys
import time

from .._version import __version__
from ..repo import decomp
from ..repo.checksums import chunk_hash
from ..repo.manifest import MANIFEST_VERSION, pack_ranks_table, ranks_table_rel
from ..repo.records import Kind


MAX_HOSTS = 16


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


def build(pend, results: list[dict], *, mode: str, chunk_size: int) -> tuple[dict, dict[str, bytes]]:
    """The manifest of ``pend`` from every rank's write result (index = rank),
    and the side files it names (rank table, irregular decomposition tables),
    which must be durable before the manifest. Format 2 (section 4): the
    manifest grows with the number of providers, not ranks; per-rank blocks
    live in the rank indexes."""
    vid = pend.vid
    nranks = len(results)
    providers: dict[str, dict] = {}
    files: dict[str, bytes] = {}
    for name, d in pend.descs:           # rank 0's descriptions (validated to match)
        e = {k: v for k, v in d.items() if k not in ("offset", "shape")}
        if d["kind"] != Kind.DISTRIBUTED:
            e["shape"] = d["shape"]
        e["replicated"] = bool((pend.replicated or {}).get(name, False))
        providers[name] = e
    tables: dict[str, str] = {}
    described: dict[tuple, tuple] = {}
    for name, e in providers.items():
        if e["kind"] != Kind.DISTRIBUTED:
            continue
        offs, shps = pend.boxes[name]
        key = (tuple(e["global_shape"]), offs.tobytes(), shps.tobytes())
        if key not in described:          # providers usually share one decomposition
            described[key] = decomp.describe(e["global_shape"], offs, shps)
        desc, raw = described[key]
        if raw is not None:      # irregular: one table file per distinct table
            rel = tables.get(desc["checksum"])
            if rel is None:
                rel = tables[desc["checksum"]] = f"data/{vid}/decomp-{len(tables)}.npy"
                files[rel] = raw
            desc = {"table": rel, "checksum": desc["checksum"]}
        e["decomposition"] = desc
    table = pack_ranks_table([r["index_checksum"] for r in results],
                             [r.get("node") for r in results])
    hosts = sorted({r["host"] for r in results})
    files[ranks_table_rel(vid)] = table
    return {
        "vlcc_manifest": MANIFEST_VERSION, "id": vid, "parent": pend.parent,
        "branch": pend.branch, "step": pend.step,
        "message": pend.message, "time": pend.t0, "nranks": nranks,
        # the first MAX_HOSTS node names and their count: O(1) in the job size
        "attrs": pend.attrs, "hosts": hosts[:MAX_HOSTS], "nhosts": len(hosts),
        "slurm": slurm_info(),
        "run": {"vlcc": __version__, "python": sys.version.split()[0],
                "mode": mode, "seconds": round(time.time() - pend.t0, 6),
                "chunk_size": chunk_size},
        "providers": providers,
        "logical_bytes": int(sum(r["logical_bytes"] for r in results)),
        "ranks": {"table": ranks_table_rel(vid), "checksum": chunk_hash(table)},
    }, files
