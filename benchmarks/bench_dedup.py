"""Redundancy elimination, dirty detection and codecs, measured in one run.

    mpiexec -n 2 python benchmarks/bench_dedup.py [--mib 256] [--chunk-kib 1024] [--dir DIR]

1. Versions: every rank holds --mib MiB of random float64. A full version,
   then one with 5 % of the chunks changed at random, then one with 0 %;
   each with hashing of every chunk (default) and with dirty tracking (Numba
   compare kernel, hash only dirty chunks). Bytes written (du of data/<vid>)
   and time (barrier to barrier, slowest rank) as ratios of the full version.
2. Hash/compare throughput (rank 0, one --mib buffer): Numba fused
   compare+refresh kernel (0 % and 5 % dirty), xxh3_128 per chunk,
   numpy.array_equal per chunk.
3. Many small providers: 10,000 arrays of 1 KiB, checkpoint (first and
   1 %-changed) and restore time, coalesced into one pack (default,
   coalesce_below=64 KiB) vs not (coalesce_below=0); plus the gather itself:
   np.concatenate(out=) vs a Python copy loop.
4. Codecs: compression ratio, encode/decode throughput and max abs error on
   a smooth field (heat-equation-like) and on random data; every lossless
   codec, and the lossy zfp at tolerance 1e-3 and 1e-6 (absolute bounds).
Ends with one summary line."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import numpy as np
import xxhash
from mpi4py import MPI

import vlcc
from vlcc.encode import get_codec, known_codecs
from vlcc.kernels.dirty import dirty_chunks


def du(path):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _d, fs in os.walk(path) for f in fs)


def timed(comm, fn):
    comm.Barrier()
    t0 = MPI.Wtime()
    out = fn()
    comm.Barrier()
    return comm.allreduce(MPI.Wtime() - t0, op=MPI.MAX), out


def versions(comm, root, mib, chunk, track):
    d = os.path.join(root, f"repo-track{int(track)}")
    n = mib * (1 << 20) // 8
    rng = np.random.default_rng(1 + comm.rank)
    u = rng.random(n)
    nch = -(-u.nbytes // chunk)
    per = chunk // 8
    out = {}
    with vlcc.Checkpointer(d, comm, chunk_size=chunk, track_dirty=track) as ck:
        ck.register("u", u, global_shape=(n * comm.size,), offset=(n * comm.rank,))
        t, v = timed(comm, ck.checkpoint)
        out["full"] = (t, v.id)
        pick = rng.choice(nch, size=max(1, nch // 20), replace=False)
        for c in pick:
            u[c * per] += 1.0
        t, v = timed(comm, ck.checkpoint)
        out["5%"] = (t, v.id)
        t, v = timed(comm, ck.checkpoint)
        out["0%"] = (t, v.id)
    sizes = {}
    if comm.rank == 0:
        sizes = {k: du(os.path.join(d, "data", vid)) for k, (t, vid) in out.items()}
    sizes = comm.bcast(sizes)
    return {k: (t, sizes[k]) for k, (t, _vid) in out.items()}


def gbps(nbytes, fn, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return nbytes / best / 1e9


def hashing(mib, chunk):
    n = mib << 20
    cur = np.random.default_rng(5).integers(0, 256, n, dtype=np.uint8)
    prev = cur.copy()
    nch = -(-n // chunk)
    dirty_chunks(cur[:chunk * 2], prev[:chunk * 2].copy(), chunk)   # compile outside the timing
    res = {}
    res["numba compare+refresh, 0% dirty"] = gbps(n, lambda: dirty_chunks(cur, prev, chunk))
    cur5 = cur.copy()
    pick = np.random.default_rng(6).choice(nch, size=max(1, nch // 20), replace=False)

    def five():
        prev[pick * chunk] ^= 1      # make 5 % of the chunks differ again
        m = dirty_chunks(cur5, prev, chunk)
        for c in np.nonzero(m)[0]:
            xxhash.xxh3_128_hexdigest(cur5[c * chunk:(c + 1) * chunk])
    res["numba compare+refresh + xxh3 of dirty, 5% dirty"] = gbps(n, five)
    res["xxh3_128 per chunk"] = gbps(n, lambda: [xxhash.xxh3_128_hexdigest(cur[s:s + chunk])
                                                 for s in range(0, n, chunk)])
    res["numpy.array_equal per chunk"] = gbps(n, lambda: [np.array_equal(cur[s:s + chunk], prev[s:s + chunk])
                                                          for s in range(0, n, chunk)])
    return res


def small_providers(comm, root, coalesce_below, count=10_000, nbytes=1024):
    d = os.path.join(root, f"repo-small-{coalesce_below}")
    arrays = [np.full(nbytes // 8, i, dtype=np.float64) for i in range(count)]
    with vlcc.Checkpointer(d, comm, coalesce_below=coalesce_below) as ck:
        for i, a in enumerate(arrays):
            ck.register(f"p/{i}", a)
        t1, _ = timed(comm, ck.checkpoint)
        for a in arrays[::100]:
            a += 1
        t2, v = timed(comm, ck.checkpoint)
        t3, _ = timed(comm, lambda: ck.restore(v))
    return t1, t2, t3


def gather(count=10_000, nbytes=1024):
    arrays = [np.full(nbytes, i % 256, dtype=np.uint8) for i in range(count)]
    out = np.empty(count * nbytes, np.uint8)

    def loop():
        o = 0
        for a in arrays:
            out[o:o + a.size] = a
            o += a.size
    return (gbps(out.size, lambda: np.concatenate(arrays, out=out), 5), gbps(out.size, loop, 5))


def heat_field(n):
    side = int(np.sqrt(n))
    y, x = np.mgrid[0:side, 0:side] / side
    u = np.exp(-((x - 0.5) ** 2 + (y - 0.5) ** 2) * 20.0)
    for _ in range(20):   # a few explicit diffusion steps
        u[1:-1, 1:-1] += 0.2 * (u[:-2, 1:-1] + u[2:, 1:-1] + u[1:-1, :-2] + u[1:-1, 2:] - 4 * u[1:-1, 1:-1])
    return u.reshape(-1)


def codecs(mib, chunk):
    n = (mib << 20) // 8
    data = {"smooth (heat)": heat_field(n), "random": np.random.default_rng(9).random(n)}
    # lossless codecs by id; the lossy zfp (only when asked) at two absolute bounds
    configs = [(cid, cid) for cid in known_codecs() if cid != "zfp"]
    if "zfp" in known_codecs():
        configs += [(f"zfp {tol:g}", {"id": "zfp", "tolerance": tol}) for tol in (1e-3, 1e-6)]
    rows = []
    for dname, arr in data.items():
        b = arr.view(np.uint8)
        for label, cfg in configs:
            c = get_codec(cfg).for_dtype(arr.dtype.str)
            enc = []
            t_enc = gbps(b.size, lambda: enc.__setitem__(slice(None), [c.encode(b[s:s + chunk]) for s in range(0, b.size, chunk)]), 1)
            stored = sum(len(e) for e in enc)
            encs = [np.frombuffer(e, np.uint8) if not isinstance(e, np.ndarray) else e for e in enc]
            dec = []
            t_dec = gbps(b.size, lambda: dec.__setitem__(slice(None), [c.decode(e, min(chunk, b.size - i * chunk)) for i, e in enumerate(encs)]), 1)
            out = np.concatenate([np.frombuffer(d, np.uint8) for d in dec]).view(arr.dtype)
            err = float(np.abs(out - arr).max()) if arr.size else 0.0
            rows.append((dname, label, b.size / stored, t_enc, t_dec, err))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=256, help="MiB per rank")
    ap.add_argument("--chunk-kib", type=int, default=1024)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--codec-mib", type=int, default=32)
    a = ap.parse_args()
    if a.dir is not None and not os.path.isdir(a.dir):   # on every rank: all stop
        ap.error(f"--dir {a.dir}: no such directory")
    comm = MPI.COMM_WORLD
    chunk = a.chunk_kib << 10
    root = comm.bcast(tempfile.mkdtemp(prefix="vlcc-bench-dedup-", dir=a.dir) if comm.rank == 0 else None)
    try:
        say = print if comm.rank == 0 else (lambda *x, **k: None)
        say(f"# bench_dedup: {comm.size} ranks x {a.mib} MiB, chunk {a.chunk_kib} KiB")
        summary = {}
        dirty_chunks(np.zeros(64, np.uint8), np.zeros(64, np.uint8), 8)   # JIT outside the timings
        for track in (False, True):
            r = versions(comm, root, a.mib, chunk, track)
            tf, bf = r["full"]
            say(f"\n## versions, dirty tracking {'on' if track else 'off'}")
            say(f"{'version':8} {'seconds':>9} {'bytes':>13} {'bytes/full':>11} {'time/full':>10}")
            for k, (t, b) in r.items():
                say(f"{k:8} {t:9.3f} {b:13d} {b / bf:11.4f} {t / tf:10.4f}")
            summary[track] = (r["5%"][1] / bf, r["5%"][0] / tf, r["0%"][0] / tf)
        if comm.rank == 0:
            say(f"\n## hash/compare throughput (one {a.mib} MiB buffer, chunk {a.chunk_kib} KiB)")
            h = hashing(a.mib, chunk)
            for k, g in h.items():
                say(f"{k:50} {g:8.2f} GB/s")
        say("\n## 10,000 providers of 1 KiB (seconds)")
        say(f"{'layout':24} {'first':>8} {'1% changed':>11} {'restore':>8}")
        small = {}
        for cb, label in ((0, "one leaf each"), (64 << 10, "coalesced (64 KiB)")):
            small[cb] = small_providers(comm, root, cb)
            say(f"{label:24} {small[cb][0]:8.3f} {small[cb][1]:11.3f} {small[cb][2]:8.3f}")
        say(f"coalesced/uncoalesced: first {small[64 << 10][0] / small[0][0]:.3f}, "
            f"1% changed {small[64 << 10][1] / small[0][1]:.3f}, restore {small[64 << 10][2] / small[0][2]:.3f}")
        if comm.rank == 0:
            gc_, gl = gather()
            say(f"gather 10,000 x 1 KiB: np.concatenate(out=) {gc_:.2f} GB/s, Python copy loop {gl:.2f} GB/s")
        if comm.rank == 0:
            say(f"\n## codecs ({a.codec_mib} MiB, chunk {a.chunk_kib} KiB)")
            say(f"{'data':14} {'codec':10} {'ratio':>7} {'enc GB/s':>9} {'dec GB/s':>9} {'max abs err':>12}")
            for dname, cid, ratio, te, td, err in codecs(a.codec_mib, chunk):
                say(f"{dname:14} {cid:10} {ratio:7.2f} {te:9.2f} {td:9.2f} {err:12.3g}")
        (b5, t5, t0), (b5t, t5t, t0t) = summary[False], summary[True]
        say(f"\nSUMMARY bench_dedup ranks={comm.size} mib={a.mib}: 5% changed bytes/full={b5:.3f} "
            f"time/full={t5:.3f} (tracking {t5t:.3f}); 0% changed time/full={t0:.3f} (tracking {t0t:.3f}); "
            f"10k small providers: {small[0][0]:.3f} s -> {small[64 << 10][0]:.3f} s coalesced "
            f"({small[0][0] / small[64 << 10][0]:.1f}x)")
    finally:
        comm.Barrier()
        if comm.rank == 0:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    from vlcc.comm.abort import abort_on_error
    abort_on_error()   # an error on one rank ends every rank (no rank left waiting)
    main()
