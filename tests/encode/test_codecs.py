"""Every lossless codec through the same round-trip checks (numcodecs style),
and compression per provider through real checkpoints: codec recorded per
chunk, restore bit-exact, incompressible chunks stored raw. The lossy zfp
codec (only when asked) is checked separately: error within the recorded
tolerance, smaller than raw, verify clean, dedup keyed on decoded bytes."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import vlcc
from vlcc.encode import get_codec, known_codecs
from mpi_helpers import on_root

CODECS = known_codecs()
LOSSLESS = [c for c in CODECS if get_codec(c if c != "zfp" else {"id": c, "tolerance": 1}).lossless]
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
    assert {"raw", "zstd", "blosc2", "zfp"} <= set(CODECS)
    assert set(CODECS) - set(LOSSLESS) == {"zfp"}


@pytest.mark.parametrize("cid", LOSSLESS)
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


@pytest.mark.parametrize("cid", LOSSLESS)
def test_config_round_trip(cid):
    c = get_codec(cid)
    cfg = c.get_config()
    assert cfg["id"] == cid
    assert get_codec(cfg).get_config() == cfg


def test_compressible_data_shrinks():
    buf = samples()["zeros"]
    for cid in LOSSLESS:
        if cid != "raw":
            assert len(get_codec(cid).encode(buf)) < buf.size // 10, cid


def test_unknown_codec_and_bad_config():
    with pytest.raises(vlcc.VlccError, match="unknown codec"):
        get_codec("nope")
    with pytest.raises(vlcc.VlccError, match="bad config"):
        get_codec({"id": "zstd", "levle": 3})
    for bad in ({"id": "zstd", "level": 999}, {"id": "zstd", "level": "x"}):
        with pytest.raises(vlcc.ArgumentError, match="bad config for codec 'zstd'"):
            get_codec(bad)


def _index(repo, vid, rank):
    with open(os.path.join(repo, "data", vid, f"r{rank}.idx.json")) as f:
        return json.load(f)


@pytest.mark.mpi
@pytest.mark.parametrize("cid", LOSSLESS)
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
    # chunks lie on the global tile grid (docs/format.md, 3.3): the partial tiles
    # at the ends of a block (a 40-byte tail, a head on ranks > 0) may not
    # shrink and stay raw; every whole tile inside is encoded
    assert set(used[1:-1]) == {cid}
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


# -- lossy: zfp (only when asked, error bound recorded) ------------------------------

ZFP = {"id": "zfp", "tolerance": 1e-6}


def test_zfp_config_needs_a_bound_and_survives_json():
    with pytest.raises(vlcc.VlccError, match="bad config"):
        get_codec("zfp")                                   # no default tolerance
    for bad in (0, -1e-3, float("nan"), float("inf"), "x"):
        with pytest.raises(vlcc.VlccError, match="tolerance"):
            get_codec({"id": "zfp", "tolerance": bad})
    c = get_codec(ZFP)
    assert not c.lossless
    f8 = c.for_dtype("<f8" if np.little_endian else ">f8")
    cfg = f8.get_config()
    assert cfg["tolerance"] == 1e-6 and np.dtype(cfg["dtype"]) == np.float64
    assert get_codec(json.loads(json.dumps(cfg))).get_config() == cfg


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_zfp_codec_error_within_tolerance(dtype):
    x = np.linspace(0, 4 * np.pi, 4096)
    vals = (np.sin(x) * np.exp(-x / 10)).astype(dtype)
    buf = vals.view(np.uint8)
    for tol in (1e-2, 1e-4, 1e-6):
        c = get_codec({"id": "zfp", "tolerance": tol}).for_dtype(np.dtype(dtype).str)
        enc, dec = c.encode_lossy(buf, 0)
        assert len(enc) < buf.size
        out = np.frombuffer(dec, dtype)
        assert np.abs(out.astype(np.float64) - vals).max() <= tol
        again = np.frombuffer(get_codec(c.get_config()).decode(np.frombuffer(enc, np.uint8).copy(),
                                                               buf.size), dtype)
        np.testing.assert_array_equal(again, out)          # decoding is deterministic


def test_zfp_applies_only_to_whole_finite_float_elements():
    c = get_codec(ZFP)
    # non-float leaves (and pickled values) fall back to raw: documented choice
    for dt in ("|u1", "<i8", "<i2", "pickle", "<c16", ">f8" if np.little_endian else "<f8"):
        assert c.for_dtype(dt).codec_id == "raw", dt
    f8 = c.for_dtype(np.dtype(np.float64).str)
    buf = np.linspace(0, 1, 1024).view(np.uint8)
    assert f8.encode_lossy(buf[4:4 + 800], 4) is None      # chunk not on an element boundary
    assert f8.encode_lossy(buf[:803], 0) is None           # not whole elements
    bad = np.linspace(0, 1, 1024)
    bad[7] = np.nan
    assert f8.encode_lossy(bad.view(np.uint8), 0) is None  # non-finite: stored raw


def _smooth(n, rank, size, dtype=np.float64):
    y = np.linspace(0, 1, n * size)
    return (np.exp(-3 * y) * np.cos(12 * y)).astype(dtype)[rank * n:(rank + 1) * n]


@pytest.mark.mpi
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_checkpoint_with_zfp_within_tolerance(mpi_tmp, comm, dtype):
    n = 5 * CHUNK // np.dtype(dtype).itemsize + 3
    u = _smooth(n, comm.rank, comm.size, dtype)
    ints = np.arange(3 * CHUNK // 8, dtype=np.int64) * (comm.rank + 1)
    gs, off = (n * comm.size,), (n * comm.rank,)
    with vlcc.Checkpointer(mpi_tmp, comm, chunk_size=CHUNK) as ck:
        ck.register("adj/u", u, global_shape=gs, offset=off, compress=ZFP)
        ck.register("ints", ints, compress=ZFP)             # not float: stored raw, bit-exact
        ck.register("plain", np.arange(100.0))
        v = ck.checkpoint()
    u2, i2 = np.zeros_like(u), np.zeros_like(ints)
    with vlcc.Checkpointer(mpi_tmp, comm, chunk_size=CHUNK) as ck:
        ck.register("adj/u", u2, global_shape=gs, offset=off)
        ck.register("ints", i2)
        ck.register("plain", np.zeros(100))
        ck.restore(v)
    err = np.abs(u2.astype(np.float64) - u.astype(np.float64)).max()
    assert err <= ZFP["tolerance"]
    np.testing.assert_array_equal(i2, ints)
    idx = _index(mpi_tmp, v.id, comm.rank)
    chunks = idx["leaves"]["adj/u"]["chunks"]
    cfgs = [idx["codecs"][c[6]] for c in chunks]
    # global tile grid (format 3.3): the partial tiles at the block's ends may stay raw
    assert all(c["id"] == "zfp" for c in cfgs[1:-1])
    for cfg in cfgs:
        if cfg["id"] == "zfp":                              # the bound is recorded per chunk
            assert cfg["tolerance"] == ZFP["tolerance"]
            assert np.dtype(cfg["dtype"]) == np.dtype(dtype)
    # stored bytes well below raw (float32 at 1e-6 keeps ~17 of 23 mantissa bits)
    assert sum(c[3] for c in chunks) < u.nbytes * (0.5 if dtype == np.float64 else 0.75)
    assert {idx["codecs"][c[6]]["id"] for c in idx["leaves"]["ints"]["chunks"]} == {"raw"}

    def check():
        repo = vlcc.Repository(mpi_tmp)
        repo.verify(v.id)
        repo.verify(v.id, deep=True)
        full = repo.read(v, "adj/u")
        ref = np.concatenate([_smooth(n, r, comm.size, dtype) for r in range(comm.size)])
        assert np.abs(full.astype(np.float64) - ref.astype(np.float64)).max() <= ZFP["tolerance"]
    on_root(comm, check)


@pytest.mark.mpi
def test_zfp_chunks_not_on_element_boundaries_are_raw(mpi_tmp, comm):
    cs = CHUNK + 4                                          # every other chunk starts mid-element
    u = _smooth(4 * CHUNK // 8, comm.rank, comm.size)
    with vlcc.Checkpointer(mpi_tmp, comm, chunk_size=cs) as ck:
        ck.register("u", u, compress=ZFP)
        v = ck.checkpoint()
    idx = _index(mpi_tmp, v.id, comm.rank)
    for k, c in enumerate(idx["leaves"]["u"]["chunks"]):
        aligned = (k * cs) % 8 == 0 and c[4] % 8 == 0
        assert idx["codecs"][c[6]]["id"] == ("zfp" if aligned else "raw"), k
    out = vlcc.Repository(mpi_tmp).read(v, "u", rank=comm.rank)
    assert np.abs(out - u).max() <= ZFP["tolerance"]
    comm.Barrier()


@pytest.mark.mpi
def test_zfp_dedup_keys_on_decoded_bytes(mpi_tmp, comm):
    # the same values stored lossy and lossless in one version, then unchanged:
    # the raw copy never references a lossy chunk (it restores bit-exact), and
    # the next version references the lossy chunks instead of rewriting them
    u = _smooth(4 * CHUNK // 8, comm.rank, comm.size)
    with vlcc.Checkpointer(mpi_tmp, comm, chunk_size=CHUNK) as ck:
        ck.register("lossy", u, compress=ZFP)
        ck.register("exact", u.copy())
        v1 = ck.checkpoint()
        v2 = ck.checkpoint()
    idx1, idx2 = _index(mpi_tmp, v1.id, comm.rank), _index(mpi_tmp, v2.id, comm.rank)
    lossy = [c[5] for c in idx1["leaves"]["lossy"]["chunks"]]
    exact = [c[5] for c in idx1["leaves"]["exact"]["chunks"]]
    assert not set(lossy) & set(exact)
    assert {idx1["codecs"][c[6]]["id"] for c in idx1["leaves"]["exact"]["chunks"]} == {"raw"}
    assert idx2["stats"]["written_bytes"] == 0 and idx2["stats"]["parent_refs"] == 2 * len(lossy)
    assert [c[5] for c in idx2["leaves"]["lossy"]["chunks"]] == lossy
    repo = vlcc.Repository(mpi_tmp)
    np.testing.assert_array_equal(repo.read(v2, "exact", rank=comm.rank), u)
    assert np.abs(repo.read(v2, "lossy", rank=comm.rank) - u).max() <= ZFP["tolerance"]
    comm.Barrier()
    on_root(comm, lambda: repo.verify(deep=True))
