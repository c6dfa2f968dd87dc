"""Prefetch: load the versions a declared plan (``Checkpointer.plan``) will
restore next into the memory tier, in the engine's prefetcher thread (no MPI)."""

from __future__ import annotations

import numpy as np

from ..comm.protocol import root_only
from ..commit.session import Session
from ..repo.manifest import Version, load_manifest
from ..repo.records import Kind
from ..state.array import ArrayProvider
from ..state.provider import Leaf
from .reader import VersionReader
from .sources import read_leaf


def plan(s: Session, versions) -> list[str]:
    """Collective: resolve the declared restore order (versions, ids, specs, or
    steps on the current branch) on rank 0, hand it to the memory tier
    (Belady eviction) and start prefetching."""
    specs = [v.id if isinstance(v, Version) else v for v in versions]

    def resolve():   # an int is a step on the current branch (vlcc/repo/spec.py)
        return [s.catalog.resolve(x, branch=s.branch).id for x in specs]
    vids = root_only(s.comm, resolve)
    s.engine.memory.set_plan(vids)
    prefetch_upcoming(s)
    return vids


def prefetch_upcoming(s: Session) -> None:
    eng = s.engine
    est = max(1, sum(p.array.nbytes for p in s.state.providers.values()
                     if isinstance(p, ArrayProvider)))
    depth = max(1, eng.memory.budget // est - 1)
    eng.prefetch(eng.memory.upcoming(depth), lambda vid: load_for_memory(s, vid))


def load_for_memory(s: Session, vid: str):
    """Read what this rank's providers need from ``vid`` into fresh buffers.
    Returns (leaves by name, bytes)."""
    doc = load_manifest(s.paths.manifest(vid), vid, s.paths.root)
    reader = VersionReader(s.paths, doc, faster=s.engine.faster_layouts)
    leaves, nbytes = {}, 0
    try:
        for name, e in doc["providers"].items():
            p = s.state.providers.get(e.get("of") or name)
            if p is None:
                continue
            if e["kind"] == Kind.DISTRIBUTED:
                if not isinstance(p, ArrayProvider) or p.kind != Kind.DISTRIBUTED:
                    continue
                out = np.empty(p.owned_shape, np.dtype(e["dtype"]))
                read_leaf(reader, name, out, rank=s.rank, nranks=s.size, offset=p.offset)
                leaf = Leaf(name, e["kind"], e["dtype"], p.owned_shape, tuple(e["global_shape"]),
                            p.offset, of=e.get("of"), data=out.reshape(-1).view(np.uint8))
            else:
                block = reader.pick_rank_block(name, s.rank, s.size)
                leaf = Leaf(name, e["kind"], e["dtype"], tuple(block["shape"]), of=e.get("of"),
                            data=reader.read_block(name, block))
                if e["kind"] == Kind.DERIVED:
                    leaf.extra = {"recipe": e.get("recipe"), "inputs": e.get("inputs")}
            leaves[name] = leaf
            nbytes += leaf.data.nbytes
    finally:
        reader.close()
    return leaves, nbytes
