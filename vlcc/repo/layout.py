"""Where things live inside a repository directory (docs/format.md, section 2),
and the repository's format file."""

from __future__ import annotations

import json
import os
import re
import secrets
import time

from ..errors import FormatVersionError, RepositoryError, VlccError
from .fsutil import atomic_write, makedirs

FORMAT_NAME = "vlcc-repository"
FORMAT_VERSION = 1
CONFIG_FILE = "vlcc.json"

_REF_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*(/[A-Za-z0-9_][A-Za-z0-9_.\-]*)*$")
_VERSION_ID = re.compile(r"^[0-9a-f]{16}$")


def check_ref_name(name: str, kind: str) -> str:
    if not isinstance(name, str) or not _REF_NAME.match(name) or name.endswith(".lock"):
        raise VlccError(f"invalid {kind} name {name!r}: use letters, digits, '_', '.', '-' "
                        f"and '/' between parts")
    return name


def is_version_id(s: str) -> bool:
    return bool(_VERSION_ID.match(s))


def new_version_id() -> str:
    """16 hex digits: 8 of time (seconds, so ids sort roughly by creation) and 8 random."""
    return f"{int(time.time()) & 0xFFFFFFFF:08x}{secrets.token_hex(4)}"


class Layout:
    """Paths of one repository. Pure path arithmetic, no I/O."""

    def __init__(self, root: str):
        self.root = os.path.abspath(root)

    def p(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    @property
    def config(self) -> str:
        return self.p(CONFIG_FILE)

    @property
    def versions_dir(self) -> str:
        return self.p("versions")

    def manifest(self, vid: str) -> str:
        return self.p("versions", f"{vid}.json")

    def ref_dir(self, kind: str) -> str:
        return self.p("refs", {"branch": "branches", "tag": "tags"}[kind])

    def ref(self, kind: str, name: str) -> str:
        return os.path.join(self.ref_dir(kind), name)

    def data_dir(self, vid: str) -> str:
        return self.p("data", vid)

    def rel_data_file(self, vid: str, rank: int) -> str:
        return f"data/{vid}/r{rank}.bp"

    def rel_index_file(self, vid: str, rank: int) -> str:
        return f"data/{vid}/r{rank}.idx.json"

    def abs(self, rel: str) -> str:
        return self.p(*rel.split("/"))


def read_config(layout: Layout) -> dict:
    path = layout.config
    if not os.path.isdir(layout.root):
        raise RepositoryError(f"no repository at {layout.root}: directory does not exist")
    if not os.path.exists(path):
        raise RepositoryError(f"{layout.root} is not a vlcc repository (no {CONFIG_FILE})")
    try:
        with open(path, "rb") as f:
            cfg = json.loads(f.read())
    except (OSError, ValueError) as exc:
        raise RepositoryError(f"cannot read repository config {path}: {exc}") from exc
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT_NAME:
        raise RepositoryError(f"{path} is not a vlcc repository config")
    fv = cfg.get("format_version")
    if fv != FORMAT_VERSION:
        raise FormatVersionError(
            f"repository {layout.root} has format version {fv!r}; this vlcc reads version "
            f"{FORMAT_VERSION} only (upgrade vlcc, or write to a new repository)")
    return cfg


def create(layout: Layout) -> dict:
    """Create the repository skeleton if missing; return its config.

    Safe when several processes create the same repository at once: the
    config is published with an exclusive link, the loser reads the winner's."""
    if os.path.exists(layout.config):
        return read_config(layout)
    for d in ("versions", "refs/branches", "refs/tags", "data", "tmp"):
        makedirs(layout.p(*d.split("/")))
    cfg = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
           "repository_id": secrets.token_hex(8), "created": time.time(),
           "spec": "docs/format.md"}
    try:
        atomic_write(layout.config, json.dumps(cfg, indent=1).encode(), exclusive=True)
    except FileExistsError:
        pass
    return read_config(layout)
