"""The catalog of a repository: list and resolve versions, branch heads,
lineage — metadata only (manifests and refs; no data files, no MPI). The
public ``vlcc.Repository`` adds reading and verifying data on top of it."""

from __future__ import annotations

import os
import warnings

from ..errors import CorruptionError, FormatVersionError, NotFoundError
from . import refs
from .config import read_config
from .checksums import chunk_hash
from .fsutil import read_regular
from .manifest import Version, load_manifest
from . import spec as _spec
from .paths import RepoPaths, is_version_id

class Catalog:
    """The versions and refs of one repository directory."""

    def __init__(self, path: str | os.PathLike):
        self.layout = RepoPaths(os.fspath(path))
        self.path = self.layout.root
        self.config = read_config(self.layout)
        self._cache: dict[str, Version] = {}
        self._written: dict[str, str] = {}     # remembered manifests: hash of the bytes written

    # -- versions -----------------------------------------------------------
    def _load(self, vid: str) -> Version:
        v = self._cache.get(vid)
        if v is not None and vid in self._written and not self._unchanged(vid):
            del self._written[vid]
            del self._cache[vid]
            v = None
        if v is None:
            doc = load_manifest(self.layout.manifest(vid), vid, self.path)
            v = self._cache[vid] = Version.from_manifest(doc, self.path)
        return v

    def remember(self, doc: dict, raw: bytes) -> Version:
        """The manifest this process just committed: ``doc``, written as the
        bytes ``raw`` (not to be changed afterwards). Resolving it next (a
        restore right after a checkpoint) reads the file and compares its
        hash with ``raw``'s instead of unsealing, parsing and checking it
        again (for 10,000 providers ~0.4 s per restore on rank 0); a manifest
        changed on disk since (damage, an edit) is loaded as any other, so
        the damage is reported."""
        vid = doc["id"]
        v = self._cache[vid] = Version.from_manifest(doc, self.path)
        self._written[vid] = chunk_hash(raw)
        return v

    def _unchanged(self, vid: str) -> bool:
        try:
            raw = read_regular(self.layout.manifest(vid), f"manifest of version {vid}")
        except (FileNotFoundError, CorruptionError):
            return False
        return chunk_hash(raw) == self._written[vid]

    def load_version(self, vid: str) -> Version:
        """The version with the exact id ``vid`` (its manifest loaded and checked:
        ``CorruptionError`` when damaged); cached."""
        return self._load(vid)

    def version_ids(self) -> list[str]:
        try:
            names = os.listdir(self.layout.versions_dir)
        except FileNotFoundError:
            return []
        return [n[:-5] for n in names if n.endswith(".json") and is_version_id(n[:-5])]

    def versions(self) -> list[Version]:
        """Every readable version, newest first. A damaged manifest, or one
        written by a newer vlcc, is skipped with a warning (``verify`` reports
        it as an error; resolving it by id raises)."""
        out = []
        for vid in self.version_ids():
            try:
                out.append(self._load(vid))
            except (CorruptionError, FormatVersionError) as exc:
                warnings.warn(f"skipping version {vid}: {exc}", stacklevel=2)
        out.sort(key=lambda v: (v.time, v.id), reverse=True)
        return out

    def branches(self) -> dict[str, str]:
        return {n: self.branch_head(n) for n in refs.list_refs(self.layout, "branch")}

    def tags(self) -> dict[str, str]:
        return refs.list_refs(self.layout, "tag")

    def branch_head(self, name: str) -> str | None:
        """The newest version of a branch. The ref file is moved right after a
        commit; if a crash fell between the two, the committed child is found
        by its parent link and taken as the head (the manifest is the commit)."""
        vid = refs.read_ref(self.layout, "branch", name)
        children: dict[str, list[Version]] = {}
        for v in self.versions():
            if v.branch == name:
                children.setdefault(v.parent, []).append(v)
        if vid is None:
            roots = children.get(None, [])
            if not roots:
                return None
            vid = max(roots, key=lambda v: (v.time, v.id)).id
        seen = set()
        while vid in children and vid not in seen:
            seen.add(vid)
            vid = max(children[vid], key=lambda v: (v.time, v.id)).id
        return vid

    def resolve(self, spec: "Version | str | int | None" = None, branch: str | None = None) -> Version:
        """The Version a spec names: an id or unique id prefix, ``latest``
        (newest of ``branch``, or of the whole repository), ``tag:NAME``,
        ``branch:NAME``, ``step:N`` (newest with step N), ``step:N@BRANCH``,
        a bare branch/tag name (vlcc/repo/spec.py, the one parser)."""
        return _spec.resolve(self, spec, branch)

    def log(self, branch: str | None = None) -> list[Version]:
        """Versions newest first: all of them, or the lineage of ``branch``
        (its head and the head's ancestors, as ``git log``). A damaged
        manifest is skipped with a warning naming its file (``verify``
        reports it); on a branch's lineage the walk stops there."""
        if branch is None:
            return self.versions()
        vid = self.branch_head(branch)
        if vid is None:
            refs.require_ref(self.layout, "branch", branch)  # unknown branch: NotFoundError
            return []
        out = []
        while vid is not None:
            try:
                v = self._load(vid)
            except NotFoundError:
                if not out:
                    raise
                break   # the rest of the lineage was pruned (vlcc prune)
            except (CorruptionError, FormatVersionError) as exc:
                # its parent link cannot be trusted: the lineage ends here
                warnings.warn(f"log of branch {branch!r} stops at version {vid}: {exc}",
                              stacklevel=2)
                break
            out.append(v)
            vid = v.parent
        return out

