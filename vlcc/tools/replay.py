"""``vlcc replay PATH@SPEC -- cmd ...``: run a command whose Checkpointer
restores that version on a new branch, so ``main`` never moves.

The command gets three environment variables, read by every
``vlcc.Checkpointer`` opened on that repository (``apply_env``):

* ``VLCC_REPLAY_REPO`` — the repository's absolute path (other repositories are left alone)
* ``VLCC_RESTORE``     — the version id to start from
* ``VLCC_BRANCH``      — the branch to write on, ``replay/<id>`` (``replay/<id>.2``, ... when taken)

The Checkpointer creates the branch at that version (if it does not exist
yet) and switches to it, so the usual restart pattern (``if ck.log():
ck.restore()``) restores exactly that version and later checkpoints land on
the replay branch."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Sequence

from ..comm import protocol
from .. import settings
from ..errors import RefExistsError, VlccError
from ..repository import Repository
from .spec import open_target

ENV_REPO, ENV_RESTORE, ENV_BRANCH = "VLCC_REPLAY_REPO", "VLCC_RESTORE", "VLCC_BRANCH"


def plan(target: str, branch: str | None = None) -> dict[str, str]:
    """The environment that replays ``target`` (``PATH@SPEC``): resolves the
    version and picks a free branch name."""
    repo, v = open_target(target)
    taken = repo.branches()
    if branch is not None:
        if branch in taken:
            raise RefExistsError(f"branch {branch!r} already exists in {repo.path}; "
                                 f"choose another --branch")
    else:
        branch, k = f"replay/{v.id}", 2
        while branch in taken:
            branch, k = f"replay/{v.id}.{k}", k + 1
    return {ENV_REPO: os.path.abspath(repo.path), ENV_RESTORE: v.id, ENV_BRANCH: branch}


def run(target: str, command: Sequence[str], branch: str | None = None) -> int:
    """Run ``command`` with the replay environment; returns its exit status."""
    if not command:
        raise VlccError("vlcc replay: no command given (vlcc replay PATH@SPEC -- cmd ...)")
    env = plan(target, branch)
    print(f"vlcc replay: version {env[ENV_RESTORE]} on branch {env[ENV_BRANCH]} "
          f"of {env[ENV_REPO]}", file=sys.stderr)
    try:
        return subprocess.call(list(command), env=os.environ | env)
    except FileNotFoundError as exc:
        raise VlccError(f"vlcc replay: cannot run {command[0]!r}: {exc.strerror}") from None


def apply_env(ck) -> None:
    """Called by ``Checkpointer.__init__`` (collective): when the environment
    asks for a replay of this repository, create the replay branch at the
    version and switch to it. Every rank sees the same environment."""
    vid = settings.get(ENV_RESTORE)
    if not vid:
        return
    repo = settings.get(ENV_REPO)
    if repo and os.path.realpath(repo) != os.path.realpath(ck.path):
        return
    name = settings.get(ENV_BRANCH) or f"replay/{vid}"
    # Rank 0 looks, every rank learns the answer (or rank 0's error): one bcast.
    exists = protocol.from_root(ck.comm, lambda: name in Repository(ck.path).branches())
    if not exists:
        ck.branch(name, at=vid)
    ck.switch(name)
