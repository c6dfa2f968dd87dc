"""Which repository a node-local tier directory belongs to: a small marker file
(``repository.json``: repository id and path, writer pid and host) that the
engine writes into each process's local-tier directory, so that ``vlcc doctor
REPO`` judges (and ``--repair`` removes) only the tiers of REPO's own jobs,
never those of other repositories sharing /dev/shm or $VLCC_LOCAL_DIR."""

from __future__ import annotations

import json
import os
import socket

from .config import read_config
from .paths import RepoPaths

MARKER = "repository.json"


def repository_id(paths: RepoPaths) -> str | None:
    """The id recorded in a repository's config (None for a repository made
    before ids existed)."""
    try:
        return read_config(paths).get("repository_id")
    except Exception:   # noqa: BLE001 - a marker is best effort; the tier works without
        return None


def write(directory: str, paths: RepoPaths) -> None:
    """Mark ``directory`` (a local tier of this process) as serving ``paths``."""
    doc = {"repository_id": repository_id(paths), "repository": os.path.abspath(paths.root),
           "pid": os.getpid(), "host": socket.gethostname()}
    tmp = os.path.join(directory, f".{MARKER}.{os.getpid()}")
    try:
        with open(tmp, "w") as f:
            json.dump(doc, f)
        os.replace(tmp, os.path.join(directory, MARKER))
    except OSError:
        # A full tmpfs: without a marker the tier is simply judged by no
        # repository's doctor (the engine's own start-up hygiene still reclaims it).
        try:
            os.remove(tmp)
        except OSError:
            pass


def read(directory: str) -> dict | None:
    try:
        with open(os.path.join(directory, MARKER)) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def belongs(directory: str, paths: RepoPaths, rid: str | None = None) -> bool:
    """True when ``directory``'s marker names repository ``paths`` (by id, or
    by path for a repository without an id). No marker: False."""
    doc = read(directory)
    if doc is None:
        return False
    rid = rid if rid is not None else repository_id(paths)
    if rid is not None and doc.get("repository_id") is not None:
        return doc["repository_id"] == rid
    return doc.get("repository") == os.path.abspath(paths.root)
