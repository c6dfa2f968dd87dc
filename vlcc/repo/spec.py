"""Version specs: the one parser and resolver behind every entry point that
names a version (``Repository.resolve``/``read``/``verify``, ``Checkpointer.
restore``/``plan``/``branch``, the CLI's ``REPO VERSION`` and ``PATH@SPEC``,
C's ``vlcc_query``/``vlcc_restore``, vlcc.torch's ``load``).

A spec is one of (``FORMS`` says it in one line for messages and help):

* a version id (16 hex digits) or a unique prefix of one (4+ hex digits);
* ``latest``: the newest version (of the context branch when one is given,
  as ``Checkpointer.restore()`` does; else of the whole repository);
* ``tag:NAME``, ``branch:NAME`` (the branch's head);
* ``step:N``: the newest version with step N; ``step:N@BRANCH``: the newest
  with step N on BRANCH's lineage (head and ancestors);
* a bare branch or tag name (branch first);
* an ``int`` N (Python only): step N, on the context branch when one is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ArgumentError, NotFoundError, VlccError
from . import refs
from .paths import check_ref_name, is_version_id

if TYPE_CHECKING:
    from .catalog import Catalog
    from .manifest import Version

FORMS = ("an id or unique id prefix (4+ hex digits), latest, tag:NAME, branch:NAME, "
         "step:N, step:N@BRANCH, or a bare branch or tag name")

_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class Spec:
    """A parsed spec. ``kind``: latest | id | tag | branch | step | name
    (a bare word: branch, tag, or id prefix, decided against the repository)."""
    kind: str
    name: str | None = None      # id, tag, branch or bare word
    step: int | None = None      # kind == "step"
    branch: str | None = None    # step:N@BRANCH
    text: str = "latest"         # as the user wrote it (for messages)


def parse(spec: "str | int | None") -> Spec:
    """The syntax only (no repository needed): raises ArgumentError, naming
    the spec and the accepted forms, for what can never name a version."""
    if spec is None:
        return Spec("latest")
    if isinstance(spec, bool) or not isinstance(spec, (str, int)) and not _is_integer(spec):
        raise ArgumentError(f"a version spec must be a string (or a step number), not "
                            f"{type(spec).__name__}: {spec!r}")
    if not isinstance(spec, str):
        return Spec("step", step=int(spec), text=f"step:{int(spec)}")
    text = spec
    if spec == "":
        raise ArgumentError(f"empty version spec: use {FORMS}")
    if spec == "latest":
        return Spec("latest")
    if spec.startswith("step:"):
        body, at, branch = spec[5:].partition("@")
        try:
            step = int(body)
        except ValueError:
            raise ArgumentError(f"bad version spec {spec!r}: step:N needs an integer N "
                                f"(e.g. step:80 or step:80@main)") from None
        if at and not branch:
            raise ArgumentError(f"bad version spec {spec!r}: a branch name must follow '@'")
        if branch:
            _check_name(branch, "branch", spec)
        return Spec("step", step=step, branch=branch or None, text=text)
    for kind in ("tag", "branch"):
        if spec.startswith(kind + ":"):
            name = spec[len(kind) + 1:]
            _check_name(name, kind, spec)
            return Spec(kind, name=name, text=text)
    if is_version_id(spec):
        return Spec("id", name=spec, text=text)
    if not _ref_ok(spec) and not _is_prefix(spec):
        raise ArgumentError(f"bad version spec {spec!r}: use {FORMS}")
    return Spec("name", name=spec, text=text)


def resolve(cat: "Catalog", spec: "Version | str | int | None",
            branch: str | None = None) -> "Version":
    """The Version ``spec`` names in catalog ``cat``. ``branch`` is the
    context branch: it scopes ``latest`` (and a bare step number) to that
    branch. Raises NotFoundError naming the spec and the repository."""
    from .manifest import Version
    if isinstance(spec, Version):
        return cat._load(spec.id)
    s = parse(spec)
    where = f"repository {cat.path}"
    if s.kind == "latest":
        if branch is not None:
            vid = cat.branch_head(branch)
            if vid is None:
                raise NotFoundError(f"no version on branch {branch!r} in {where}")
            return cat._load(vid)
        vs = cat.versions()
        if not vs:
            raise NotFoundError(f"{where} has no versions")
        return vs[0]
    if s.kind == "tag":
        return cat._load(refs.require_ref(cat.layout, "tag", s.name))
    if s.kind == "branch":
        refs.require_ref(cat.layout, "branch", s.name)
        return cat._load(cat.branch_head(s.name))
    if s.kind == "id":
        return cat._load(s.name)
    if s.kind == "step":
        on = s.branch if s.branch is not None else (branch if not isinstance(spec, str) else None)
        for v in (cat.log(branch=on) if on else cat.versions()):
            if v.step == s.step:
                return v
        scope = f"on branch {on!r} of" if on else "in"
        raise NotFoundError(f"no version with step {s.step} {scope} {where}")
    # a bare word: branch, then tag, then id prefix
    if _ref_ok(s.name):
        if refs.read_ref(cat.layout, "branch", s.name):
            return cat._load(cat.branch_head(s.name))
        tag = refs.read_ref(cat.layout, "tag", s.name)
        if tag:
            return cat._load(tag)
    if _is_prefix(s.name):
        hits = [vid for vid in cat.version_ids() if vid.startswith(s.name)]
        if len(hits) == 1:
            return cat._load(hits[0])
        if len(hits) > 1:
            raise NotFoundError(f"version prefix {s.name!r} is ambiguous in {where}: "
                                f"{', '.join(sorted(hits)[:5])}")
    raise NotFoundError(f"unknown version {s.text!r} in {where} (use {FORMS})")


def _is_integer(x) -> bool:
    try:
        import numpy as np
    except ImportError:    # pragma: no cover - numpy is a dependency
        return False
    return isinstance(x, np.integer)


def _is_prefix(word: str) -> bool:
    return len(word) >= 4 and set(word) <= _HEX


def _check_name(name: str, kind: str, spec: str) -> None:
    try:
        check_ref_name(name, kind)
    except VlccError as exc:
        raise ArgumentError(f"bad version spec {spec!r}: {exc}") from None


def _ref_ok(name: str) -> bool:
    try:
        check_ref_name(name, "ref")
        return True
    except VlccError:
        return False
