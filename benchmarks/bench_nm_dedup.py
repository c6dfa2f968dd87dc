"""Dedup and reads across an N→M restart: chunks on the global tile grid
(format 3, docs/format.md section 3.3) vs fixed-size chunks of each rank's
block (format 2), measured in one run.

    python benchmarks/bench_nm_dedup.py [--rows 2048] [--cols 1024] [--chunk-kib 256] [--dir DIR]

A float64 array of --rows × --cols random values (the defaults are the
8192 × 4096 / 4 MiB case of issue 19 scaled down 16×: the same 16 × 4 tiles)
is checkpointed on 2 ranks, then restored on 3 ranks and checkpointed again
unchanged (mpiexec, real repositories), once split by rows and once by columns.

* bytes written by the 3-rank version: measured (``Repository.du``,
  new_chunk_bytes) with global-grid tiles; for fixed-size per-block chunks
  (format 2) the same dedup rule (a chunk is stored unless an identical
  (hash, size) chunk of the parent or of a lower rank exists) is evaluated on
  the same bytes, exactly as format 2's writer decides;
* bytes read by a 3-rank column-split restore of the row-written version:
  measured (``VersionReader.stats``) with tiles; for per-block chunks, the
  chunks ``layout.boxes.needed_chunks`` selects (what format 2's reader reads).
Ends with one SUMMARY line."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

import vlcc
from vlcc.layout.boxes import intersect, needed_chunks
from vlcc.layout.chunking import chunk_bounds
from vlcc.repo.checksums import chunk_hash


def split_cuts(n: int, k: int) -> list[int]:
    q, r = divmod(n, k)
    return [i * q + min(i, r) for i in range(k + 1)]


def boxes(shape, split: str, nranks: int):
    axis = 0 if split == "rows" else 1
    cuts = split_cuts(shape[axis], nranks)
    out = []
    for r in range(nranks):
        off, shp = [0, 0], list(shape)
        off[axis], shp[axis] = cuts[r], cuts[r + 1] - cuts[r]
        out.append((tuple(off), tuple(shp)))
    return out


def global_data(shape) -> np.ndarray:
    return np.random.default_rng(0).random(shape)


def worker(mode: str, repo: str, split: str, shape, chunk: int) -> None:
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    off, shp = boxes(shape, split, comm.size)[comm.rank]
    a = np.zeros(shp)
    with vlcc.Checkpointer(repo, comm, chunk_size=chunk) as ck:
        ck.register("u", a, global_shape=shape, offset=off)
        if mode == "write":
            a[...] = global_data(shape)[off[0]:off[0] + shp[0], off[1]:off[1] + shp[1]]
        else:
            ck.restore()
        v = ck.checkpoint()
    if comm.rank == 0:
        print(json.dumps({"version": v.id}), flush=True)


def mpirun(n: int, shape, chunk_kib: int, *args) -> str:
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if not os.path.exists(mpiexec):
        mpiexec = shutil.which("mpiexec") or "mpiexec"
    cmd = [mpiexec, "-n", str(n), sys.executable, "-m", "mpi4py", os.path.abspath(__file__),
           "--rows", str(shape[0]), "--cols", str(shape[1]), "--chunk-kib", str(chunk_kib),
           "--worker", *map(str, args)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])["version"]


def flat_new_bytes(g: np.ndarray, split: str, chunk: int) -> int:
    """Bytes the 3-rank version writes with format 2's per-block chunks."""
    seen = set()
    for off, shp in boxes(g.shape, split, 2):
        b = np.ascontiguousarray(g[off[0]:off[0] + shp[0], off[1]:off[1] + shp[1]]).view(np.uint8)
        b = b.reshape(-1)
        seen.update((chunk_hash(b[s:s + n]), n) for s, n in chunk_bounds(b.size, chunk))
    new = 0
    for off, shp in boxes(g.shape, split, 3):
        b = np.ascontiguousarray(g[off[0]:off[0] + shp[0], off[1]:off[1] + shp[1]]).view(np.uint8)
        b = b.reshape(-1)
        for s, n in chunk_bounds(b.size, chunk):
            key = (chunk_hash(b[s:s + n]), n)
            if key not in seen:
                seen.add(key)
                new += n
    return new


def flat_read_bytes(shape, chunk: int, box) -> int:
    """Bytes format 2's reader reads to fill ``box`` from row-written blocks."""
    total = 0
    for off, shp in boxes(shape, "rows", 2):
        inter = intersect(off, shp, *box)
        if inter is None:
            continue
        sub = tuple(a - b for a, b in zip(inter[0], off))
        nbytes = int(np.prod(shp)) * 8
        which = needed_chunks(shp, 8, sub, inter[1], chunk)
        total += sum(min(chunk, nbytes - k * chunk) for k in which.tolist())
    return total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=2048)
    p.add_argument("--cols", type=int, default=1024)
    p.add_argument("--chunk-kib", type=int, default=256)
    p.add_argument("--dir", default=None)
    p.add_argument("--worker", nargs=3, metavar=("MODE", "REPO", "SPLIT"))
    a = p.parse_args()
    if a.dir is not None and not os.path.isdir(a.dir):   # on every rank: all stop
        p.error(f"--dir {a.dir}: no such directory")
    shape, chunk = (a.rows, a.cols), a.chunk_kib << 10
    if a.worker:
        worker(a.worker[0], a.worker[1], a.worker[2], shape, chunk)
        return
    from vlcc.layout.tiles import tile_shape
    from vlcc.repo.paths import RepoPaths
    from vlcc.restore.reader import VersionReader
    root = tempfile.mkdtemp(prefix="bench-nm-dedup-", dir=a.dir)
    g = global_data(shape)
    total = g.nbytes
    print(f"array {shape[0]}×{shape[1]} float64 = {total / 2**20:.1f} MiB, chunk {a.chunk_kib} KiB, "
          f"tile {tile_shape(shape, 8, chunk)}")
    res = {}
    try:
        print(f"{'2 → 3 ranks, unchanged':28s} {'per-block chunks':>18s} {'global tiles':>14s}")
        for split in ("rows", "cols"):
            repo = os.path.join(root, split)
            mpirun(2, shape, a.chunk_kib, "write", repo, split)
            v2 = mpirun(3, shape, a.chunk_kib, "restart", repo, split)
            (d,) = [x for x in vlcc.Repository(repo).du()["versions"] if x["id"] == v2]
            tiled = d["new_chunk_bytes"]
            flat = flat_new_bytes(g, split, chunk)
            res[split] = (flat / total, tiled / total)
            print(f"  new bytes, split by {split:5s}  {flat / total:17.1%} {tiled / total:14.1%}")
        # A 3-rank column-split restore of the row-written version.
        repo = os.path.join(root, "rows")
        v1 = vlcc.Repository(repo).log()[-1]
        flat_read = tiled_read = 0
        for off, shp in boxes(shape, "cols", 3):
            r = VersionReader(RepoPaths(repo), v1.manifest)
            try:
                out = np.empty(shp)
                r.read_box("u", out, off)
                assert out.tobytes() == np.ascontiguousarray(
                    g[:, off[1]:off[1] + shp[1]]).tobytes(), "column restore differs"
                tiled_read += r.stats["bytes_read"]
            finally:
                r.close()
            flat_read += flat_read_bytes(shape, chunk, (off, shp))
        print(f"  column restore of row data: bytes read / array bytes "
              f"{flat_read / total:8.2f} {tiled_read / total:14.2f}")
        print(f"\nSUMMARY bench_nm_dedup {shape[0]}x{shape[1]} chunk={a.chunk_kib}KiB: 2->3 new bytes "
              f"rows flat={res['rows'][0]:.3f} tiled={res['rows'][1]:.3f}, "
              f"cols flat={res['cols'][0]:.3f} tiled={res['cols'][1]:.3f}; "
              f"3-rank column restore reads flat={flat_read / total:.2f}x tiled={tiled_read / total:.2f}x "
              f"of the array")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    from vlcc.comm.abort import abort_on_error
    abort_on_error()   # an error on one rank ends every rank (no rank left waiting)
    main()
