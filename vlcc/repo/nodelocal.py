"""Records of versions whose data were kept on node-local tiers
(docs/format.md, "Node-local redundancy"), read by verify and doctor:

* ``data/<V>/nodelocal.json`` — written before the commit of a version that was
  not copied to the persistent tier (``persist`` other than ``always``): the
  redundancy scheme, the node-local directory, the nodes and their ranks;
* ``data/<V>/rebuilt.json`` — written when a restore completed the version on
  the persistent tier from the node stores: the nodes whose files were
  rebuilt from redundancy (``rebuilt_nodes``), by which rank, and timings."""

from __future__ import annotations

import json
import os

from ..errors import VlccError
from .manifest import load_manifest, rank_indexes
from .paths import RepoPaths

REBUILT = "rebuilt.json"
NODELOCAL = "nodelocal.json"


def record_rel(vid: str, name: str) -> str:
    return f"data/{vid}/{name}"


def read_record(paths: RepoPaths, vid: str, name: str) -> dict | None:
    try:
        with open(paths.abs(record_rel(vid, name)), "rb") as f:
            doc = json.loads(f.read())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def complete_on(paths: RepoPaths, vid: str, nranks: int, doc: dict | None = None) -> bool:
    """Is every rank's index file of the version on the persistent tier? (A
    rank's index is copied after its data file, so then its files are all there.)
    ``doc``: the version's manifest when the caller holds it (else read)."""
    if all(os.path.exists(paths.abs(paths.rel_index_file(vid, r))) for r in range(nranks)):
        return True
    # format 4 node files (section 3.4): the rank table names each rank's index
    try:
        if doc is None:
            doc = load_manifest(paths.manifest(vid), vid, paths.root)
        if doc.get("vlcc_manifest", 1) < 4:
            return False
        rels = {rel for _r, rel, _c in rank_indexes(paths, doc)}
    except (VlccError, OSError):
        return False
    return all(os.path.exists(paths.abs(rel)) for rel in rels)


def describe(paths: RepoPaths, vid: str, nranks: int) -> str | None:
    """One line on where the version's data came from, or None for an ordinary version."""
    rb = read_record(paths, vid, REBUILT)
    if rb is not None:
        nodes = rb.get("rebuilt_nodes") or []
        if nodes:
            return (f"version {vid}: the node-local data of node(s) {', '.join(map(str, nodes))} "
                    f"were rebuilt from {rb.get('scheme')!r} redundancy and the version "
                    f"completed on the persistent tier")
        return f"version {vid}: completed on the persistent tier from the node-local tiers"
    nl = read_record(paths, vid, NODELOCAL)
    if nl is not None and not complete_on(paths, vid, nranks):
        labels = [str(n.get("label")) for n in nl.get("nodes", [])]
        return (f"version {vid}: data kept on the node-local tiers of nodes {', '.join(labels)} "
                f"only (redundancy {nl.get('scheme')!r}, {nl.get('local_dir')}); a restore with "
                f"that local_dir completes it while they hold it (the newest VLCC_LOCAL_KEEP)")
    return None


__all__ = ["REBUILT", "NODELOCAL", "record_rel", "read_record", "complete_on", "describe"]
