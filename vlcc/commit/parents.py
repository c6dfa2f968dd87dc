"""Dedup and lineage parents that still exist (docs/format.md, section 5,
"Concurrent writers and dedup parents").

A writer keeps the chunk table of the last version it wrote in memory
(``RankWriter``) and names its last version as the next one's parent. Between
two checkpoints another process may ``prune`` that version and ``gc`` its
files (nothing stops it: no writer lock is held between checkpoints). So,
once rank 0 holds the writer lock of the new checkpoint (gc and prune cannot
run until it is released, repo/locks.py ``gc_exclusive``), it re-checks that
every rank's dedup parent still has its manifest — or is one of this
writer's own versions in flight, whose data its lock protects — and the
answer travels with the new version id in the same broadcast. A rank whose
dedup parent is gone dedups against the branch head instead (it exists, and
stays while the lock is held), or against nothing. The lineage parent is
re-checked at commit time under the branch lock (``commit_version``)."""

from __future__ import annotations

import os

from .session import Session


def gone_parents(s: Session, candidates) -> tuple[list[str], str | None]:
    """Rank 0, holding the writer lock: which of ``candidates`` (version ids)
    no longer exist (no manifest, not in flight here), and the version to
    dedup against instead (the branch head, or None)."""
    in_flight = {p.vid for p in s.engine.pending} if s.engine is not None else set()
    gone = sorted(c for c in set(candidates) if c is not None and c not in in_flight
                  and not os.path.exists(s.paths.manifest(c)))
    if not gone:
        return [], None
    head = s.catalog.branch_head(s.branch)
    return gone, head


def replace_gone(vid: str | None, gone: list[str], instead: str | None) -> str | None:
    """``vid`` unless it was found gone, then ``instead``."""
    return instead if vid in gone else vid


__all__ = ["gone_parents", "replace_gone"]
