"""verify --deep: chunk hashes are not taken as proof of identity; every
stored copy and every distinct reference of a shared chunk is read, decoded
and compared byte-for-byte (docs/format.md, section 10, "Hash collisions")."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import vlcc
from vlcc.repo.checksums import chunk_hash, digest_of
from vlcc.repo.sealed import seal
from mpi_helpers import on_root

CHUNK = 4096
VLCC = [sys.executable, "-m", "vlcc.cli"]


def cli(*args):
    return subprocess.run([*VLCC, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.mpi
def test_deep_verify_reads_every_reference_of_shared_chunks(mpi_tmp, comm):
    same = np.arange(4 * CHUNK // 8, dtype=np.float64)        # identical on all ranks
    mine = np.random.default_rng(comm.rank).random(2 * CHUNK // 8)
    with vlcc.Checkpointer(mpi_tmp, comm, chunk_size=CHUNK) as ck:
        ck.register("same", same)
        ck.register("mine", mine, compress="zstd")
        v1 = ck.checkpoint()
        mine[:8] += 1                      # chunk 0 of "mine" changes, the rest is shared
        v2 = ck.checkpoint()

    def check():
        repo = vlcc.Repository(mpi_tmp)
        res = repo.verify(deep=True)
        d = res["deep"]
        # "same": 4 hashes, each referenced by every rank in both versions;
        # "mine": chunk 1 of every rank referenced by v1 and v2
        assert d["shared_hashes"] == 4 + comm.size
        assert d["references"] == 4 * 2 * comm.size + 2 * comm.size
        assert d["copies_read"] == d["shared_hashes"]       # dedup: one stored copy each
        assert d["bytes_compared"] == 0
        one = repo.verify(v2.id, deep=True)["deep"]          # one version: same shared set
        assert one["shared_hashes"] == d["shared_hashes"]
        out = cli("verify", mpi_tmp, "--deep")
        assert out.returncode == 0, out.stderr
        assert "no collision" in out.stdout
        js = json.loads(cli("verify", mpi_tmp, v1.id, "--deep", "--json").stdout)
        assert js["ok"] and js["deep"]["copies_read"] >= 4
    on_root(comm, check)


def test_copies_stored_twice_are_compared_byte_for_byte(tmp_path):
    repo = str(tmp_path / "r")
    a = np.random.default_rng(1).random(3 * CHUNK // 8)
    with vlcc.Checkpointer(repo, chunk_size=CHUNK, dedup=False) as ck:
        ck.register("a", a)
        ck.checkpoint()
        ck.checkpoint()                    # no dedup: every chunk stored a second time
    d = vlcc.Repository(repo).verify(deep=True)["deep"]
    assert d["shared_hashes"] == 3 and d["copies_read"] == 6
    assert d["bytes_compared"] == 3 * CHUNK


def _forge_hash(repo: str, vid: str, leaf: str, k: int, new_hash: str) -> None:
    """Rewrite one chunk entry's hash and re-seal index and manifest, as a
    hash collision would look: the entry's hash is that of other bytes."""
    ipath = os.path.join(repo, "data", vid, "r0.idx.json")
    with open(ipath) as f:
        idx = json.load(f)
    idx["leaves"][leaf]["chunks"][k][5] = new_hash
    idx["leaves"][leaf]["digest"] = digest_of([c[5] for c in idx["leaves"][leaf]["chunks"]])
    raw = seal(idx)
    with open(ipath, "wb") as f:
        f.write(raw)
    # format 2: the index checksums live in ranks.bin, whose checksum the manifest holds
    tpath = os.path.join(repo, "data", vid, "ranks.bin")
    with open(tpath, "rb") as f:
        old = f.read()
    # format 4 (docs/format.md 3.4): 20-byte records, a node number before the checksum
    head = old[:4] if old[:4] == b"\xff\xff\xff\xff" else b""
    table = head + bytes.fromhex(chunk_hash(raw)) + old[len(head) + 16:]
    with open(tpath, "wb") as f:
        f.write(table)
    mpath = os.path.join(repo, "versions", f"{vid}.json")
    with open(mpath) as f:
        m = json.load(f)
    m["ranks"]["checksum"] = chunk_hash(table)
    with open(mpath, "wb") as f:
        f.write(seal(m))


def test_same_hash_different_bytes_is_reported_as_collision(tmp_path):
    repo = str(tmp_path / "r")
    x = np.full(CHUNK // 8, 1.0)
    with vlcc.Checkpointer(repo, chunk_size=CHUNK, dedup=False, coalesce_below=0) as ck:
        ck.register("x", x)
        v1 = ck.checkpoint()
        x[-1] = 2.0
        v2 = ck.checkpoint()
    vlcc.Repository(repo).verify()
    with open(os.path.join(repo, "data", v1.id, "r0.idx.json")) as f:
        h1 = json.load(f)["leaves"]["x"]["chunks"][0][5]
    _forge_hash(repo, v2.id, "x", 0, h1)
    r = vlcc.Repository(repo)
    # the plain check sees a chunk whose bytes do not match its hash
    with pytest.raises(vlcc.CorruptionError, match="checksum mismatch"):
        r.verify()
    # the deep check finds the two different copies filed under one hash
    with pytest.raises(vlcc.CorruptionError, match="hash collision") as ei:
        r.verify(deep=True)
    msg = str(ei.value)
    assert f"data/{v1.id}/r0.bp" in msg and f"data/{v2.id}/r0.bp" in msg
    assert "differ at byte" in msg
    with pytest.raises(vlcc.CorruptionError, match="hash collision"):
        r.verify(v1.id, deep=True)       # v1 itself is fine; its chunk's hash is shared
    out = cli("verify", repo, "--deep")
    assert out.returncode == 4 and "hash collision" in out.stderr   # EXIT_CORRUPT
