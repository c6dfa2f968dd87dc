"""A data file truncated while it is read through a mapping is a
CorruptionError, never a SIGBUS (issue 32, item 4): staged restore,
``atomic=False``, ``Repository.read`` and ``vlcc verify``, each in a real
child process racing a truncation done by this process; and the atomic
restore's phase 2 after a truncation between its two phases (deterministic)."""

from __future__ import annotations

import glob
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import vlcc
from vlcc.errors import CorruptionError
from vlcc.io import busguard

N = 4 << 20          # float64 elements: 32 MiB, so a read takes a while

CHILD = r"""
import sys, numpy as np, vlcc
from vlcc.errors import CorruptionError
repo, vid, how = sys.argv[1:4]
a = np.zeros(int(sys.argv[4]))
print("ready", flush=True)
try:
    for _ in range(100000):
        if how == "read":
            vlcc.Repository(repo).read(vid, "a")
        elif how == "verify":
            rep = vlcc.Repository(repo).verify(vid)
            if rep.get("damaged"):
                raise CorruptionError(str(rep["damaged"]))
        else:
            with vlcc.Checkpointer(repo) as ck:
                ck.register("a", a)
                ck.restore(vid, atomic=(how == "staged"))
except CorruptionError as exc:
    print("CorruptionError", exc, flush=True)
    sys.exit(0)
print("never failed", flush=True)
sys.exit(3)
"""


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    repo = str(tmp_path_factory.mktemp("trunc") / "repo")
    a = np.random.default_rng(1).standard_normal(N)
    with vlcc.Checkpointer(repo) as ck:
        ck.register("a", a)
        vid = ck.checkpoint(step=1).id
    return repo, vid


def data_file(repo: str, vid: str) -> str:
    (path,) = glob.glob(os.path.join(repo, "data", vid, "r0.bp", "data.0"))
    return path


def test_guard_is_built():
    # the mapped path (and the guard this file tests) is what restores use here
    assert busguard.available()


@pytest.mark.parametrize("how", ["staged", "direct", "read", "verify"])
def test_truncated_while_read_in_another_process(written, tmp_path, how):
    src, vid = written
    rng = random.Random(hash(how) & 0xffff)
    for trial in range(3):
        repo = str(tmp_path / f"r{trial}")
        shutil.copytree(src, repo)
        target = data_file(repo, vid)
        child = subprocess.Popen([sys.executable, "-c", CHILD, repo, vid, how, str(N)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert child.stdout.readline().strip() == "ready"
            time.sleep(0.05 + rng.random() * 0.3)      # reads are under way
            os.truncate(target, rng.randrange(0, os.path.getsize(target)))
            out, err = child.communicate(timeout=300)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        assert child.returncode != -signal.SIGBUS, f"{how}: SIGBUS\n{err}"
        assert child.returncode == 0, f"{how}: exit {child.returncode}\n{out}\n{err}"
        assert "CorruptionError" in out, out
        assert "data.0" in out or "truncated" in out or "checksum" in out, out


def two_arrays(tmp_path, src: str, seed: int):
    """A copy of the fixture repository plus a version holding two arrays in
    one data file: (repo, version, a, b, data file)."""
    repo = str(tmp_path / "r")
    shutil.copytree(src, repo)
    a = np.random.default_rng(seed).standard_normal(N // 2)
    b = np.random.default_rng(seed + 1).standard_normal(N // 2)
    with vlcc.Checkpointer(repo) as ck:
        ck.register("a", a)
        ck.register("b", b)
        vid = ck.checkpoint(step=2).id
    return repo, vid, a, b, data_file(repo, vid)


def restore_with(repo: str, vid: str, a, b, damage, match: str):
    """Restore ``vid`` with ``damage`` done by the first array's on_restore
    (phase 2, before the second array is copied): the error matches
    ``match``; returns the two targets."""
    ra, rb = np.zeros_like(a), np.zeros_like(b)
    with vlcc.Checkpointer(repo) as ck:
        ck.register("a", ra, on_restore=lambda _x: damage())
        ck.register("b", rb)
        with pytest.raises(CorruptionError, match=match):
            ck.restore(vid)
    return ra, rb


def test_truncated_between_the_phases_of_an_atomic_restore(written, tmp_path):
    """Phase 1 verified every chunk in place; a truncation before phase 2
    copies them is caught while copying (the documented trade-off of the
    restore without a staging copy: arrays copied before it stay copied)."""
    repo, vid2, a, b, target = two_arrays(tmp_path, written[0], 2)
    ra, rb = restore_with(repo, vid2, a, b, lambda: os.truncate(target, 4096), "truncated")
    assert np.array_equal(ra, a)
    assert not np.array_equal(rb, b)       # what was copied before the error: zeros


def test_rewritten_between_the_phases_of_an_atomic_restore(written, tmp_path):
    """Phase 2 copies straight from the pages phase 1 verified, without a
    second hash: a data file rewritten in place between the phases (same
    size) is caught by its changed modification time, naming the file."""
    repo, vid2, a, b, target = two_arrays(tmp_path, written[0], 4)

    def flip():
        fd = os.open(target, os.O_RDWR)
        try:
            at = os.path.getsize(target) - 4096      # inside the last array's bytes
            (byte,) = os.pread(fd, 1, at)
            os.pwrite(fd, bytes([byte ^ 0xFF]), at)
        finally:
            os.close(fd)
    ra, _rb = restore_with(repo, vid2, a, b, flip, r"data\.0 changed while being restored")
    assert np.array_equal(ra, a)
