"""Every codec through the same round-trip checks (numcodecs style), and
compression per provider through real checkpoints: codec recorded per chunk,
restore bit-exact, incompressible chunks stored raw."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import vlcc
from vlcc.encode import get_codec, known_codecs
from mpi_helpers import on_root

CODECS = known_codecs()
CHUNK = 8192


def samples():
    rng = np.random.default_rng(0)
    x = np.linspace(0, 4 * np.pi, 5000)
    return {
        "empty": np.empty(0, np.uint8),
        "one byte": np.array([7], np.uint8),
        "odd length": rng.integers(0, 256, 1001, dtype=np.uint8),
        "zeros": np.zeros(65536, np.uint8),
        "smooth f8": np.sin(x).view(np.uint8),
        "random f4": rng.random(3001, dtype=np.float32).view(np.uint8),
        "int16": rng.integers(-5, 5, 4097, dtype=np.int16).view(np.uint8),
    }


def test_optional_codecs_are_installed():
    # the 'compress' extra is part of the test environment; without it this
    # suite would silently test only the raw codec
    assert {"raw", "zstd", "blosc2"} <= set(CODECS)


@pytest.mark.parametrize("cid", CODECS)
@pytest.mark.parametrize("what", list(samples()))
def test_round_trip(cid, what):
    buf = samples()[what]
    for dtype in ("|u1", "<f8", "<i2"):
        codec = get_codec(cid).for_dtype(dtype)
        enc = codec.encode(buf)
        stored = np.frombuffer(enc, np.uint8) if not isinstance(enc, np.ndarray) else enc
        again = get_codec(json.loads(json.dumps(codec.get_config())))   # config survives JSON
        out = np.frombuffer(again.decode(stored.copy(), buf.size), np.uint8)
        np.testing.assert_array_equal(out, buf)


@pytest.mark.parametrize("cid", CODECS)
def test_config_round_trip(cid):
    c = get_codec(cid)
    cfg = c.get_config()
    assert cfg["id"] == cid
    assert get_codec(cfg).get_config() == cfg


def test_compressible_data_shrinks():
    buf = samples()["zeros"]
    for cid in CODECS:
        if cid != "raw":
            assert len(get_codec(cid).encode(buf)) < buf.size // 10, cid


def test_unknown_codec_and_bad_config():
    with pytest.raises(vlcc.VlccError, match="unknown codec"):
        get_codec("nope")
    with pytest.raises(vlcc.VlccError, match="bad config"):
        get_codec({"id": "zstd", "levle": 3})


def _index(repo, vid, rank):
    with open(os.path.join(repo, "data", vid, f"r{rank}.idx.json")) as f:
        return json.load(f)


@pytest.mark.mpi
@pytest.mark.parametrize("cid", CODECS)
def test_checkpoint_with_codec_restores_bit_exact(mpi_tmp, comm, cid):
    n = 6 * CHUNK // 8 + 5
    y = np.linspace(0, 1, n * comm.size)
    smooth = np.exp(-y[comm.rank * n:(comm.rank + 1) * n])                      # compressible
    noise = np.random.default_rng(comm.rank).integers(0, 256, 3 * CHUNK, dtype=np.uint8)  # not
    with vlcc.Checkpointer(mpi_tmp, comm, chunk_size=CHUNK) as ck:
        ck.register("smooth", smooth, global_shape=(n * comm.size,), offset=(n * comm.rank,),
                    compress=cid)
        ck.register("noise", noise, compress=cid)
        ck.register("plain", np.arange(100.0))
        v = ck.checkpoint()
        s2, n2 = np.zeros_like(smooth), np.zeros_like(noise)
    with vlcc.Checkpointer(mpi_tmp, comm, chunk_size=CHUNK) as ck:
        ck.register("smooth", s2, global_shape=(n * comm.size,), offset=(n * comm.rank,))
        ck.register("noise", n2)
        ck.register("plain", np.zeros(100))
        ck.restore(v)
    np.testing.assert_array_equal(s2, smooth)
    np.testing.assert_array_equal(n2, noise)
    idx = _index(mpi_tmp, v.id, comm.rank)
    used = [idx["codecs"][c[6]]["id"] for c in idx["leaves"]["smooth"]["chunks"]]
    assert set(used[:-1]) == {cid}          # the 40-byte tail may not shrink: then it is raw
    assert set(used) <= {cid, "raw"}
    # incompressible chunks fall back to raw, whatever was asked
    assert {idx["codecs"][c[6]]["id"] for c in idx["leaves"]["noise"]["chunks"]} == {"raw"}
    assert {idx["codecs"][c[6]]["id"] for c in idx["leaves"]["plain"]["chunks"]} == {"raw"}
    if cid != "raw":
        stored = sum(c[3] for c in idx["leaves"]["smooth"]["chunks"])
        assert stored < smooth.nbytes

    def check():
        repo = vlcc.Repository(mpi_tmp)
        repo.verify(v.id)
        np.testing.assert_array_equal(repo.read(v, "smooth"), np.exp(-y))
    on_root(comm, check)


@pytest.mark.mpi
def test_changing_the_codec_keeps_old_chunks_readable(mpi_tmp, comm):
    u = np.linspace(0, 1, 8 * CHUNK // 8) + comm.rank
    with vlcc.Checkpointer(mpi_tmp, comm, chunk_size=CHUNK) as ck:
        ck.register("u", u, compress="zstd")
        v1 = ck.checkpoint()
        ck.unregister("u")
        ck.register("u", u, compress={"id": "blosc2", "clevel": 9})
        u[:10] = -1.0
        v2 = ck.checkpoint()
    idx = _index(mpi_tmp, v2.id, comm.rank)
    ids = [idx["codecs"][c[6]]["id"] for c in idx["leaves"]["u"]["chunks"]]
    assert ids[0] == "blosc2" and set(ids[1:]) == {"zstd"}   # unchanged chunks: v1's zstd chunks
    repo = vlcc.Repository(mpi_tmp)
    np.testing.assert_array_equal(repo.read(v2, "u", rank=comm.rank), u)
    comm.Barrier()


def test_register_rejects_unknown_codec(tmp_path):
    with vlcc.Checkpointer(str(tmp_path / "r")) as ck:
        with pytest.raises(vlcc.VlccError, match="unknown codec"):
            ck.register("u", np.zeros(3), compress="lzfoo")
        assert "u" not in ck.providers
