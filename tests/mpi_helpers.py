"""Small helpers shared by the MPI tests."""

from __future__ import annotations

import contextlib
import json
import os

import pytest


def on_root(comm, check) -> None:
    """Run ``check`` on rank 0 and fail on every rank if it fails there (an
    assertion on rank 0 alone would leave the others waiting in a collective)."""
    err = None
    if comm.rank == 0:
        try:
            check()
        except BaseException as exc:  # noqa: BLE001
            err = f"{type(exc).__name__}: {exc}"
    err = comm.bcast(err, root=0)
    if err is not None:
        pytest.fail(f"rank 0: {err}")


def index(repo: str, vid: str, rank: int) -> dict:
    """A rank's chunk index of a version, as stored."""
    with open(os.path.join(repo, "data", vid, f"r{rank}.idx.json")) as f:
        return json.load(f)


def load_module(path: str, name: str):
    """Import a script (a benchmark, an example, a test script) as a module by
    its path: the one copy of the importlib incantation the tests use."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


COMM_KINDS = ["world", "split", "dup"]


@contextlib.contextmanager
def communicator(kind: str):
    """COMM_WORLD, a split sub-communicator (even/odd ranks) or a Dup: every
    test body that takes one runs on all three (mpi4py's own practice)."""
    from mpi4py import MPI
    world = MPI.COMM_WORLD
    if kind == "world":
        yield world
        return
    c = world.Split(world.rank % 2, world.rank) if kind == "split" else world.Dup()
    try:
        yield c
    finally:
        c.Free()
