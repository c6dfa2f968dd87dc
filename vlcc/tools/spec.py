"""``PATH[@SPEC]`` targets: a repository and one version in it.

SPEC is anything ``Repository.resolve`` takes (vlcc/repo/spec.py, the one
parser: an id or id prefix, ``latest``, ``tag:NAME``, ``branch:NAME``,
``step:N``, ``step:N@BRANCH``, a bare branch or tag name). Without SPEC:
``latest``."""

from __future__ import annotations

import os

from ..errors import ArgumentError
from ..repo.manifest import Version
from ..repository import Repository


def split_target(target: str) -> tuple[str, str | None]:
    """``"runs/a@tag:x"`` -> ``("runs/a", "tag:x")``. A path that itself holds
    an ``@`` is recognised because it exists as a directory."""
    if not isinstance(target, str) or not target:
        raise ArgumentError(f"expected PATH[@SPEC], got {target!r}")
    if os.path.isdir(target) or "@" not in target:
        return target, None
    at = [i for i, c in enumerate(target) if c == "@"]
    for i in at:   # the first split whose left side is an existing directory
        if os.path.isdir(target[:i]):
            return target[:i], target[i + 1:] or None
    return target[:at[0]], target[at[0] + 1:] or None


def resolve(repo: Repository, spec: str | None) -> Version:
    """The version ``spec`` names in ``repo`` (kept name: ``repo.resolve``)."""
    return repo.resolve(spec)


def open_target(target: "str | tuple") -> tuple[Repository, Version]:
    """A (Repository, Version) from ``"PATH[@SPEC]"``, ``(path_or_repo, spec)``
    or ``(repo, Version)``."""
    if isinstance(target, tuple):
        where, spec = target
        repo = where if isinstance(where, Repository) else Repository(where)
        return repo, repo.resolve(spec)
    path, spec = split_target(target)
    repo = Repository(path)
    return repo, repo.resolve(spec)


def label(repo: Repository, v: Version) -> str:
    """How a target is named in messages: ``PATH@ID``."""
    return f"{repo.path}@{v.id}"
