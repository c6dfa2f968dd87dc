"""Whole-repository verify checks every branch and tag (malformed file,
dangling: no manifest) and does not stop at the first damaged version: one
CorruptionError lists every damaged version and ref, and carries the lists
of damaged and intact versions. Serial (COMM_SELF)."""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import numpy as np
import pytest
from mpi4py import MPI

import vlcc

SELF = MPI.COMM_SELF


class Repo:
    """Four versions of one random per-rank array (distinct bytes each, so
    no chunk is shared), a tag on the first and a branch ``side``."""

    def __init__(self, path):
        self.path = str(path)
        rng = np.random.default_rng(3)
        self.x = rng.standard_normal(256)
        self.versions, self.payloads = [], []
        with vlcc.Checkpointer(self.path, comm=SELF) as ck:
            ck.register("x", self.x)
            for step in range(4):
                self.x[:] = rng.standard_normal(256)
                self.payloads.append(self.x.tobytes())
                self.versions.append(ck.checkpoint(step=step))
            ck.tag("first", self.versions[0])
            ck.branch("side", at=self.versions[1])

    def damage_chunk(self, k):
        """Flip one byte of version k's stored array."""
        v, payload = self.versions[k], self.payloads[k]
        for path in sorted(glob.glob(os.path.join(self.path, "data", v.id, "**", "data.*"),
                                     recursive=True)):
            with open(path, "r+b") as f:
                blob = f.read()
                at = blob.find(payload)
                if at >= 0:
                    f.seek(at + 100)
                    f.write(bytes([blob[at + 100] ^ 0xFF]))
                    return
        raise AssertionError(f"payload of version {v.id} not found")


@pytest.fixture
def repo(tmp_path):
    return Repo(tmp_path / "repo")


def ref_path(r: Repo, kind: str, name: str) -> str:
    """Where docs/format.md (section 1) puts a branch or tag file."""
    return os.path.join(r.path, "refs", {"branch": "branches", "tag": "tags"}[kind], name)


def test_intact_repository_lists_every_version(repo):
    res = vlcc.Repository(repo.path).verify()
    assert res["versions"] == 4
    assert res["intact"] == sorted(v.id for v in repo.versions)


def test_two_damaged_versions_both_listed(repo):
    repo.damage_chunk(1)
    repo.damage_chunk(3)
    with pytest.raises(vlcc.CorruptionError) as ei:
        vlcc.Repository(repo.path).verify()
    e, ids = ei.value, [v.id for v in repo.versions]
    assert e.damaged == sorted([ids[1], ids[3]])
    assert e.intact == sorted([ids[0], ids[2]])
    assert e.damaged_refs == []
    msg = str(e)
    assert ids[1] in msg and ids[3] in msg and "provider 'x'" in msg, msg
    # a named version still raises for that version alone
    with pytest.raises(vlcc.CorruptionError, match=ids[3]):
        vlcc.Repository(repo.path).verify(repo.versions[3])
    assert vlcc.Repository(repo.path).verify(repo.versions[2])["versions"] == 1


@pytest.mark.parametrize("content", [b"\x00" * 16, b"garbage-not-an-id\n", b"0123\xff\n"])
def test_malformed_branch_and_tag(repo, content):
    for kind, name in (("branch", "side"), ("tag", "first")):
        with open(ref_path(repo, kind, name), "wb") as f:
            f.write(content)
    with pytest.raises(vlcc.CorruptionError) as ei:
        vlcc.Repository(repo.path).verify()
    e = ei.value
    assert e.damaged_refs == ["branch side", "tag first"]
    assert e.damaged == []
    assert e.intact == sorted(v.id for v in repo.versions)
    assert "malformed ref file" in str(e) and ref_path(repo, "tag", "first") in str(e)


def test_dangling_tag(repo):
    v0 = repo.versions[0]
    manifest = os.path.join(repo.path, "versions", f"{v0.id}.json")
    assert os.path.exists(manifest)
    os.remove(manifest)
    with pytest.raises(vlcc.CorruptionError) as ei:
        vlcc.Repository(repo.path).verify()
    e = ei.value
    assert "tag first" in e.damaged_refs
    assert f"dangling ref {ref_path(repo, 'tag', 'first')}: version {v0.id}" in str(e)
    assert e.intact == sorted(v.id for v in repo.versions[1:])


def test_cli_lists_damaged_and_intact(repo):
    repo.damage_chunk(0)
    with open(ref_path(repo, "branch", "side"), "wb") as f:
        f.write(b"\x00junk")
    ids = [v.id for v in repo.versions]
    for extra in ([], ["--quiet"]):
        p = subprocess.run([sys.executable, "-m", "vlcc.cli", "verify", repo.path, *extra],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode != 0, p.stdout
        assert f"damaged: version {ids[0]}" in p.stdout, p.stdout
        assert "damaged: branch side" in p.stdout, p.stdout
        for vid in ids[1:]:
            assert f"intact:  version {vid}" in p.stdout, p.stdout
        assert "Traceback" not in p.stderr, p.stderr
