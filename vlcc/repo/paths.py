"""Where things live inside a repository directory (docs/format.md, section 2):
``RepoPaths`` (pure path arithmetic), ref names and version ids."""

from __future__ import annotations

import os
import re
import secrets
import time

from ..errors import ArgumentError

CONFIG_FILE = "vlcc.json"

_REF_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*(/[A-Za-z0-9_][A-Za-z0-9_.\-]*)*$")
_VERSION_ID = re.compile(r"^[0-9a-f]{16}$")


def check_ref_name(name: str, kind: str) -> str:
    if not isinstance(name, str) or not _REF_NAME.fullmatch(name) or name.endswith(".lock"):
        raise ArgumentError(f"invalid {kind} name {name!r}: use letters, digits, '_', '.', '-' "
                        f"and '/' between parts")
    return name


def is_version_id(s: str) -> bool:
    return isinstance(s, str) and bool(_VERSION_ID.fullmatch(s))


def new_version_id() -> str:
    """16 hex digits: 8 of time (seconds, so ids sort roughly by creation) and 8 random."""
    return f"{int(time.time()) & 0xFFFFFFFF:08x}{secrets.token_hex(4)}"


class RepoPaths:
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

    def rel_node_data_file(self, vid: str, node: int) -> str:
        """Format 4 (section 3.4): the BP5 file the ranks of node ``node`` share."""
        return f"data/{vid}/n{node}.bp"

    def rel_node_index_file(self, vid: str, node: int) -> str:
        return f"data/{vid}/n{node}.idx.json"

    @property
    def locks_dir(self) -> str:
        return self.p("locks")

    def abs(self, rel: str) -> str:
        return self.p(*rel.split("/"))
