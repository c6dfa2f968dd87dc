"""The repository's config file ``vlcc.json`` (docs/format.md, section 2):
format name and version, creation. A vlcc reads the format versions in
``READABLE`` and writes ``FORMAT_VERSION``."""

from __future__ import annotations

import json
import os
import secrets
import time

from ..errors import FormatVersionError, RepositoryError, VlccError
from .fsutil import atomic_write, makedirs, read_regular
from .paths import CONFIG_FILE, RepoPaths

FORMAT_NAME = "vlcc-repository"
FORMAT_VERSION = 4
READABLE = (1, 2, 3, 4)
# What a concurrent creator may already have made (it publishes vlcc.json last).
SKELETON = {"versions", "refs", "data", "locks", "tmp", "vlcc.json"}


def read_config(paths: RepoPaths) -> dict:
    path = paths.config
    if not os.path.isdir(paths.root):
        raise RepositoryError(f"no repository at {paths.root}: directory does not exist")
    if not os.path.exists(path):
        raise RepositoryError(f"{paths.root} is not a vlcc repository (no {CONFIG_FILE})")
    try:
        cfg = json.loads(read_regular(path, "repository config", limit=1 << 20))
    except (OSError, ValueError, RecursionError, VlccError) as exc:
        raise RepositoryError(f"cannot read repository config {path}: {exc}") from None
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT_NAME:
        raise RepositoryError(f"{path} is not a vlcc repository config")
    fv = cfg.get("format_version")
    if fv not in READABLE:
        raise FormatVersionError(
            f"repository {paths.root} has format version {fv!r}; this vlcc reads versions "
            f"{', '.join(map(str, READABLE))} (upgrade vlcc, or write to a new repository)")
    return cfg


def create(paths: RepoPaths, *, force: bool = False) -> dict:
    """Create the repository skeleton if missing; return its config.

    A missing or empty directory becomes a repository; a non-empty directory
    that is not one is refused (a mistyped path must not litter a home or
    project directory) unless ``force``. Safe when several processes create
    the same repository at once: the config is published with an exclusive
    link, the loser reads the winner's."""
    if os.path.exists(paths.config):
        return read_config(paths)
    try:
        present = [n for n in os.listdir(paths.root) if not n.startswith(".tmp-")]
    except FileNotFoundError:
        present = []
    except OSError as exc:
        raise RepositoryError(f"cannot use {paths.root} as a repository: {exc.strerror or exc}") from exc
    if present and not force and not set(present) <= SKELETON:
        raise RepositoryError(
            f"{paths.root} is not empty and not a vlcc repository (it holds "
            f"{', '.join(sorted(present)[:3])}{', ...' if len(present) > 3 else ''}); "
            f"pass create=True to make it one anyway, or choose an empty directory")
    for d in ("versions", "refs/branches", "refs/tags", "data", "locks"):
        makedirs(paths.p(*d.split("/")))
    cfg = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
           "repository_id": secrets.token_hex(8), "created": time.time(),
           "spec": "docs/format.md"}
    try:
        atomic_write(paths.config, json.dumps(cfg, indent=1).encode(), exclusive=True)
    except FileExistsError:
        pass
    return read_config(paths)


def upgrade(paths: RepoPaths) -> dict:
    """Before a writer adds versions to a repository of an older format: record
    the format it now holds (readers dispatch per manifest, so every old
    version stays readable; a vlcc that reads only the old format refuses the
    repository instead of skipping the new versions)."""
    cfg = read_config(paths)
    if cfg.get("format_version") == FORMAT_VERSION:
        return cfg
    cfg = dict(cfg, format_version=FORMAT_VERSION,
               upgraded_from=cfg.get("upgraded_from", cfg.get("format_version")))
    atomic_write(paths.config, json.dumps(cfg, indent=1).encode())
    return cfg
