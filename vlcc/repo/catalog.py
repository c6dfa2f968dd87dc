"""The catalog of a repository: list and resolve versions, branch heads,
lineage — metadata only (manifests and refs; no data files, no MPI). The
public ``vlcc.Repository`` adds reading and verifying data on top of it."""

from __future__ import annotations

import os
import warnings

from ..errors import ArgumentError, CorruptionError, FormatVersionError, NotFoundError, VlccError
from . import refs
from .config import read_config
from .manifest import Version, load_manifest
from .paths import RepoPaths, is_version_id

class Catalog:
    """The versions and refs of one repository directory."""

    def __init__(self, path: str | os.PathLike):
        self.layout = RepoPaths(os.fspath(path))
        self.path = self.layout.root
        self.config = read_config(self.layout)
        self._cache: dict[str, Version] = {}

    # -- versions -----------------------------------------------------------
    def _load(self, vid: str) -> Version:
        v = self._cache.get(vid)
        if v is None:
            doc = load_manifest(self.layout.manifest(vid), vid, self.path)
            v = self._cache[vid] = Version.from_manifest(doc, self.path)
        return v

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

    def resolve(self, spec: "Version | str | None" = None, branch: str | None = None) -> Version:
        """A Version from an id (or unique prefix of ≥4 digits), ``latest``
        (newest of ``branch``, or of the whole repository), ``tag:NAME``,
        ``branch:NAME``, or a bare branch/tag name."""
        if isinstance(spec, Version):
            return self._load(spec.id)
        if spec is None or spec == "latest":
            if branch is not None:
                vid = self.branch_head(branch)
                if vid is None:
                    raise NotFoundError(f"no version on branch {branch!r} in repository {self.path}")
                return self._load(vid)
            vs = self.versions()
            if not vs:
                raise NotFoundError(f"repository {self.path} has no versions")
            return vs[0]
        if not isinstance(spec, str):
            raise ArgumentError(f"version must be a Version or a string, not {type(spec).__name__}")
        if spec.startswith("tag:"):
            return self._load(refs.require_ref(self.layout, "tag", spec[4:]))
        if spec.startswith("branch:"):
            name = spec[7:]
            refs.require_ref(self.layout, "branch", name)
            return self._load(self.branch_head(name))
        if is_version_id(spec):
            return self._load(spec)
        if _ref_ok(spec):
            if refs.read_ref(self.layout, "branch", spec):
                return self._load(self.branch_head(spec))
            tag = refs.read_ref(self.layout, "tag", spec)
            if tag:
                return self._load(tag)
        if len(spec) >= 4 and all(c in "0123456789abcdef" for c in spec):
            hits = [vid for vid in self.version_ids() if vid.startswith(spec)]
            if len(hits) == 1:
                return self._load(hits[0])
            if len(hits) > 1:
                raise NotFoundError(f"version prefix {spec!r} is ambiguous in {self.path}: "
                                    f"{', '.join(sorted(hits)[:5])}")
        raise NotFoundError(f"unknown version {spec!r} in repository {self.path} "
                            f"(use an id, 'latest', 'tag:NAME' or 'branch:NAME')")

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


def _ref_ok(name: str) -> bool:
    try:
        refs.check_ref_name(name, "ref")
        return True
    except VlccError:
        return False
