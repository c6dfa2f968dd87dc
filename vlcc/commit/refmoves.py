"""Collective ref moves of a Checkpointer: create a branch or a tag, switch
the branch new versions go to (docs/format.md, section 5). Ref files are
touched on rank 0 only, inside ``root_only``, so an error reaches every rank."""

from __future__ import annotations

from ..errors import NotFoundError
from ..repo import refs
from ..repo.manifest import Version
from ..repo.paths import check_ref_name
from ..comm.protocol import root_only
from .session import Session


def resolve_id(s: Session, at) -> str:
    """Rank 0: the version id ``at`` names (default: the current parent)."""
    if at is None:
        if s.parent is None:
            raise NotFoundError(f"branch {s.branch!r} has no version yet")
        return s.parent
    return s.catalog.resolve(at.id if isinstance(at, Version) else at).id


def make_branch(s: Session, name: str, at) -> Version:
    def make():
        vid = resolve_id(s, at)
        refs.create_ref(s.paths, "branch", name, vid)
        return s.catalog.resolve(vid).manifest
    return Version.from_manifest(root_only(s.comm, make), s.paths.root)


def make_tag(s: Session, name: str, version) -> None:
    root_only(s.comm, lambda: refs.create_ref(s.paths, "tag", name, resolve_id(s, version)))


def switch(s: Session, name: str, create: bool) -> None:
    """The next versions go to ``name``; their parent is its head (or, for a
    new branch, the current parent). Async: when a version of ``name`` this
    writer made is still pending, that version is the head (the ref on disk
    does not name it yet); nothing waits for it."""
    own = s.pending_head(name)

    def look():
        check_ref_name(name, "branch")
        if own is not None:     # its first version may be pending: no ref on disk yet
            return own, None
        if refs.read_ref(s.paths, "branch", name) is None:
            if not create:
                refs.require_ref(s.paths, "branch", name)
            refs.check_free(s.paths, "branch", name)  # fail now, not at the next commit
            return s.parent, None
        head = s.catalog.branch_head(name)
        return head, head
    parent, head = root_only(s.comm, look)
    if own is not None:     # the same on every rank: pending versions are collective
        s.switched(name, own)
    else:
        s.switched(name, parent, head)
