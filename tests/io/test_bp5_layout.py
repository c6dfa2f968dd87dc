"""The BP5 data path below the chunks (io/bp5.py, io/direct.py): where ADIOS2
puts each variable in data.0 (the offsets writers record for mapped reads),
vlcc's own O_DIRECT writing of data.0, its fallback when ADIOS2 would lay the
file out differently, and restores that read the mapped file (and still
catch damage, including a truncated file, without a crash)."""

from __future__ import annotations

import glob
import json
import mmap
import os

import numpy as np
import pytest
from mpi4py import MPI

import vlcc
from vlcc.errors import CorruptionError
from vlcc.io import bp5, direct

SELF = MPI.COMM_SELF
# Sizes around the rule's threshold (MinDeferredSize): below, exactly at, above.
SIZES = [13, 4096, 3, 300_000, 7, bp5.MIN_DEFERRED + 5, 5, bp5.MIN_DEFERRED,
         bp5.MIN_DEFERRED - 1, 100]


def _vars(seed=0):
    rng = np.random.default_rng(seed)
    out = {f"v{i}": np.frombuffer(rng.bytes(n), np.uint8) for i, n in enumerate(SIZES)}
    big = np.frombuffer(mmap.mmap(-1, 3 << 20), np.uint8)     # page-aligned: the DMA path
    big[:] = rng.integers(0, 256, big.size, dtype=np.uint8)
    out["aligned"] = big
    return out


def _write(path, arrs, **kw):
    w = bp5.BlockWriter(str(path), reserve=sum(a.size for a in arrs.values()),
                        nvars=len(arrs), **kw)
    for k, a in arrs.items():
        w.put(k, a)
    w.close()
    return w


def _check_file(path, arrs, offsets):
    data0 = os.path.join(str(path), "data.0")
    assert os.path.isfile(data0) and not os.path.islink(data0)
    raw = np.fromfile(data0, np.uint8)
    assert raw.size >= sum(a.size for a in arrs.values())
    with bp5.BlockReader(str(path), offsets=offsets) as rd:
        for k, a in arrs.items():
            got = np.empty(a.size, np.uint8)
            rd.read_into(k, 0, got)                       # through ADIOS2
            assert np.array_equal(got, a), k
            assert np.array_equal(raw[offsets[k]:offsets[k] + a.size], a), k
            assert np.array_equal(rd.view(k, 0, a.size), a), k   # through the mapping


@pytest.mark.parametrize("bulk", [False, True])
def test_adios2_layout_rule_holds(tmp_path, bulk):
    """ADIOS2 writing data.0 itself (bulk=False) follows ``layout_offsets``
    (the writer checks, so offsets are recorded); vlcc writing it (bulk)
    gives a file ADIOS2 reads back bit-exact. A different ADIOS2 layout
    fails here first."""
    arrs = _vars()
    w = _write(tmp_path / "f.bp", arrs, bulk=bulk)
    assert w.offsets == bp5.layout_offsets([(k, a.size) for k, a in arrs.items()])
    _check_file(tmp_path / "f.bp", arrs, w.offsets)


def test_bulk_on_tmpfs_and_without_o_direct(tmp_path, monkeypatch):
    """tmpfs refuses O_DIRECT (plain writes then); VLCC_DIRECT_IO=0 turns it off."""
    arrs = _vars(1)
    if os.path.isdir("/dev/shm"):
        d = os.path.join("/dev/shm", f"vlcc-test-{os.getpid()}")
        os.makedirs(d, exist_ok=True)
        try:
            w = _write(os.path.join(d, "f.bp"), arrs)
            _check_file(os.path.join(d, "f.bp"), arrs, w.offsets)
        finally:
            import shutil
            shutil.rmtree(d, ignore_errors=True)
    monkeypatch.setenv("VLCC_DIRECT_IO", "0")
    w = _write(tmp_path / "g.bp", arrs)
    _check_file(tmp_path / "g.bp", arrs, w.offsets)


def test_bulk_falls_back_when_adios2_lays_out_differently(tmp_path, monkeypatch):
    """If vlcc's idea of the layout is wrong, ADIOS2's reader sees other bytes
    than were put: the file is written again through ADIOS2, and the offsets
    recorded are the ones checked in that file."""
    arrs = _vars(2)
    wrong = lambda sizes, *_a: {k: i for i, (k, _n) in enumerate(sizes)}   # noqa: E731
    monkeypatch.setattr(bp5, "layout_offsets", wrong)
    w = _write(tmp_path / "f.bp", arrs)
    monkeypatch.undo()
    assert w.offsets is None or w.offsets == bp5.layout_offsets([(k, a.size) for k, a in arrs.items()])
    with bp5.BlockReader(str(tmp_path / "f.bp")) as rd:
        for k, a in arrs.items():
            got = np.empty(a.size, np.uint8)
            rd.read_into(k, 0, got)
            assert np.array_equal(got, a), k
    assert not glob.glob(str(tmp_path / "f.bp" / "*vlcc-tmp*"))


@pytest.mark.parametrize("shift", [0, 1, 4095])
def test_write_concat_any_alignment(tmp_path, shift):
    """Segments at any address and of any size: the file is their concatenation."""
    rng = np.random.default_rng(shift)
    base = np.frombuffer(mmap.mmap(-1, 6 << 20), np.uint8)
    base[:] = rng.integers(0, 256, base.size, dtype=np.uint8)
    segs = [base[shift:shift + 5000], base[1 << 20:(1 << 20) + (2 << 20)],
            base[(4 << 20) + shift:(4 << 20) + shift + 1], base[(5 << 20):(5 << 20) + 12345]]
    p = str(tmp_path / "x.bin")
    with open(p, "wb") as f:
        f.write(b"\xff" * (9 << 20))            # longer old content: cut to the new size
    n = direct.write_concat(p, segs)
    assert n == sum(s.size for s in segs)
    assert np.array_equal(np.fromfile(p, np.uint8), np.concatenate(segs))


def _version(path, shape=(64, 512)):
    u = np.random.default_rng(3).standard_normal(shape)
    with vlcc.Checkpointer(str(path), comm=SELF, chunk_size=64 << 10, dedup=False) as ck:
        ck.register("u", u, global_shape=shape, offset=(0, 0))
        vid = ck.checkpoint(step=0).id
    return u, vid


def test_restore_reads_the_mapped_file_not_adios2(tmp_path, monkeypatch):
    """A fresh version records its variables' offsets; restores (staged and
    direct) then read raw chunks from the mapping: ADIOS2's read is never
    called, and the result is bit-exact."""
    u, vid = _version(tmp_path / "r")
    idx = glob.glob(str(tmp_path / "r" / "data" / vid / "r0.idx.json"))[0]
    assert "u" in json.load(open(idx))["bp5_offsets"]

    def no_adios2_read(self, *a, **k):
        raise AssertionError("ADIOS2 read used for a raw chunk with a recorded offset")
    monkeypatch.setattr(bp5.BlockReader, "read_into", no_adios2_read)
    for atomic in (True, False):
        out = np.zeros_like(u)
        with vlcc.Checkpointer(str(tmp_path / "r"), comm=SELF) as ck:
            ck.register("u", out, global_shape=u.shape, offset=(0, 0))
            ck.restore(vid, atomic=atomic)
        assert np.array_equal(out, u)


@pytest.mark.parametrize("where", ["middle", "last"])
def test_mapped_read_catches_a_flipped_byte(tmp_path, where):
    u, vid = _version(tmp_path / "r")
    data0 = glob.glob(str(tmp_path / "r" / "data" / vid / "r0.bp" / "data.0"))[0]
    at = os.path.getsize(data0) // 2 + 11 if where == "middle" else os.path.getsize(data0) - 1
    with open(data0, "r+b") as f:
        f.seek(at)
        b = f.read(1)
        f.seek(at)
        f.write(bytes([b[0] ^ 0x10]))
    out = np.zeros_like(u)
    with vlcc.Checkpointer(str(tmp_path / "r"), comm=SELF) as ck:
        ck.register("u", out, global_shape=u.shape, offset=(0, 0))
        with pytest.raises(CorruptionError, match=r"checksum mismatch.*|.*checksum mismatch"):
            ck.restore(vid)
    assert not out.any(), "staged restore touched the target"


def test_truncated_data_file_is_an_error_not_a_crash(tmp_path):
    """Mapped bytes past the end of a file would be SIGBUS: the reader checks
    the file size first and names the file."""
    u, vid = _version(tmp_path / "r")
    data0 = glob.glob(str(tmp_path / "r" / "data" / vid / "r0.bp" / "data.0"))[0]
    os.truncate(data0, os.path.getsize(data0) // 3)
    out = np.zeros_like(u)
    with vlcc.Checkpointer(str(tmp_path / "r"), comm=SELF) as ck:
        ck.register("u", out, global_shape=u.shape, offset=(0, 0))
        with pytest.raises(CorruptionError, match=r"data\.0|truncated"):
            ck.restore(vid, atomic=False)


@pytest.mark.parametrize("direct_io", ["1", "0"])
def test_lazy_tile_major_bytes_are_written_as_gathered(tmp_path, monkeypatch, direct_io):
    """A tiled block handed to the writer unread (layout/stored.TileMajor, and
    a Chain of ranges of it) is copied into the bounce buffer as it is written:
    the file holds the gathered bytes, ADIOS2 reads them, and the fallback
    through ADIOS2 (a wrong layout rule) copies them out first."""
    from vlcc.layout.stored import TileMajor
    from vlcc.layout.tiles import gather, pieces
    monkeypatch.setenv("VLCC_DIRECT_IO", direct_io)
    shape, tile = (300, 700), (64, 128)
    src = np.frombuffer(mmap.mmap(-1, 300 * 700 * 8), np.uint8)
    src[:] = np.random.default_rng(5).integers(0, 256, src.size, dtype=np.uint8)
    ps = pieces((0, 0), shape, tile)
    tm = TileMajor(src, (0, 0), shape, ps, 8)
    want = gather(src, (0, 0), shape, ps, 8)
    chain = tm.range(1000, 5 << 20)
    for name, wrong in (("f.bp", False), ("g.bp", True)):
        if wrong:
            monkeypatch.setattr(bp5, "layout_offsets",
                                lambda sizes, *_a: {k: i for i, (k, _n) in enumerate(sizes)})
        w = bp5.BlockWriter(str(tmp_path / name), reserve=tm.size + chain.size, nvars=2)
        w.put("tm", tm)
        w.put("part", chain)
        w.close()
        monkeypatch.undo()
        monkeypatch.setenv("VLCC_DIRECT_IO", direct_io)
        with bp5.BlockReader(str(tmp_path / name)) as rd:
            for var, ref in (("tm", want), ("part", want[1000:1000 + (5 << 20)])):
                got = np.empty(ref.size, np.uint8)
                rd.read_into(var, 0, got)
                assert np.array_equal(got, ref), (name, var)


def test_reading_leaves_no_profile_in_tmp(tmp_path):
    """ADIOS2 2.12's BP5 reader writes /tmp/<file>_<pid>_profiling.json at
    every close (no parameter stops it); the reader removes it, and so does
    a restore through ADIOS2 in an MPI job."""
    arrs = _vars()
    path = tmp_path / "p.bp"
    _write(path, arrs)
    with bp5.BlockReader(str(path)) as rd:
        got = np.empty(arrs["v0"].size, np.uint8)
        rd.read_into("v0", 0, got)
        assert np.array_equal(got, arrs["v0"])
    assert not os.path.exists(bp5.read_profile(str(path)))
    # the file ADIOS2 names is the one removed (the name is not a guess)
    lib = bp5.adios_c.lib()
    io = lib.adios2_declare_io(bp5.adios_c.adios(), b"vlcc-test-profile")
    lib.adios2_set_engine(io, b"BP5")
    eng = lib.adios2_open(io, os.fsencode(str(path)), bp5.adios_c.MODE_READ_RANDOM)
    lib.adios2_close(eng)
    res = bp5.adios_c.ffi.new("int *")
    lib.adios2_remove_io(res, bp5.adios_c.adios(), b"vlcc-test-profile")
    try:
        assert os.path.exists(bp5.read_profile(str(path)))
    finally:
        bp5._remove_read_profile(str(path))


def test_node_layout_check_samples_first_last_and_between():
    """place_node_data checks at most 16 variables of a node file: the first,
    the last and evenly spaced ones, each once, in order."""
    items = [f"v{i}" for i in range(450)]
    got = bp5._sample(items, 16)
    assert len(got) == len(set(got)) == 16
    assert got[0] == "v0" and got[-1] == "v449"
    assert [items.index(x) for x in got] == sorted(items.index(x) for x in got)
    gaps = np.diff([items.index(x) for x in got])
    assert gaps.max() - gaps.min() <= 1
    assert bp5._sample(items[:10], 16) == items[:10]
