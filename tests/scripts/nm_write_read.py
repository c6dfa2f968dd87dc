"""N→M restart check, run under ``mpiexec -n K python -m mpi4py nm_write_read.py``.

    nm_write_read.py write REPO SCHEME CHUNK_SIZE   # on N ranks: checkpoint one version
    nm_write_read.py read  REPO SCHEME [direct]     # on M ranks: restore it, check bit-exact
                                                    # (direct: restore(atomic=False), no staging)

Several distributed arrays (1-D, 2-D, 3-D; complex128, float64, int32, float32,
bool, int64) are decomposed by SCHEME over the job's ranks:

    rows    split axis 0 evenly          cols    split the last axis evenly
    bisect  recursive bisection, alternating axes (true 2-D / 3-D blocks)
    uneven  split axis 0 in proportion 1:2:3:... (may leave a rank empty)
    rev     split axis 0, rank order reversed (rank 0 owns the last rows)
    all     every array three times, as SPLIT/NAME for SPLIT in rows, cols, bisect;
            read back with another split (rows → cols → bisect → rows)

The writer stores blocks with a halo of 1 filled with garbage; the reader uses a
halo of 2 filled with a sentinel that must survive the restore. Every array's
content is a function of the global index, so each side computes what it must
hold. Exit status 0 and a line "NM-OK ..." per rank mean success.
"""

from __future__ import annotations

import sys

import numpy as np
from mpi4py import MPI

import vlcc

PROVIDERS = {
    "grid/u1": ((29,), "complex128"),
    "grid/u2": ((13, 11), "float64"),
    "grid/u3": ((5, 7, 6), "int32"),
    "grid/f2": ((10, 9), "float32"),
    "grid/b2": ((7, 5), "bool"),
    "grid/tiny": ((2, 3), "int64"),      # fewer rows than ranks at 3: empty blocks
}
WRITE_HALO, READ_HALO = 1, 2
META = {"step": 42, "name": "nm", "dt": 0.125}


def global_data(shape, dtype) -> np.ndarray:
    """The whole array, as a function of the flat global index."""
    n = int(np.prod(shape))
    i = np.arange(n, dtype=np.int64)
    dt = np.dtype(dtype)
    if dt.kind == "b":
        a = (i * 7) % 3 == 0
    elif dt.kind in "iu":
        a = ((i * 2654435761) % (2**31 - 1) - 2**30).astype(dt)
    elif dt.kind == "f":
        a = (np.sin(i * 0.37) * 1e3 + i / 7.0).astype(dt)
    else:
        a = (np.cos(i * 0.11) + 1j * np.sin(i * 0.29) * i).astype(dt)
    return a.reshape(shape)


def replicated() -> np.ndarray:
    return global_data((4, 4), "float64") * 3.0


def _cuts(n: int, weights) -> list[int]:
    w = np.cumsum([0] + list(weights), dtype=np.float64)
    return [int(round(n * x / w[-1])) for x in w]


def _split_axis(gshape, nprocs, axis, weights=None, reverse=False):
    cuts = _cuts(gshape[axis], weights or [1] * nprocs)
    boxes = []
    for r in range(nprocs):
        p = nprocs - 1 - r if reverse else r
        off = [0] * len(gshape)
        shp = list(gshape)
        off[axis], shp[axis] = cuts[p], cuts[p + 1] - cuts[p]
        boxes.append((tuple(off), tuple(shp)))
    return boxes


def _bisect(off, shp, ranks, axis, out):
    if len(ranks) == 1:
        out[ranks[0]] = (tuple(off), tuple(shp))
        return
    a, b = ranks[:len(ranks) // 2], ranks[len(ranks) // 2:]
    cut = int(round(shp[axis] * len(a) / len(ranks)))
    off_b, shp_a, shp_b = list(off), list(shp), list(shp)
    shp_a[axis], shp_b[axis], off_b[axis] = cut, shp[axis] - cut, off[axis] + cut
    nxt = (axis + 1) % len(shp)
    _bisect(off, shp_a, a, nxt, out)
    _bisect(off_b, shp_b, b, nxt, out)


def boxes(scheme: str, gshape, nprocs: int):
    """[(offset, shape)] of every rank's owned block."""
    nd = len(gshape)
    if scheme == "rows":
        return _split_axis(gshape, nprocs, 0)
    if scheme == "cols":
        return _split_axis(gshape, nprocs, nd - 1)
    if scheme == "uneven":
        return _split_axis(gshape, nprocs, 0, weights=[r + 1 for r in range(nprocs)])
    if scheme == "rev":
        return _split_axis(gshape, nprocs, 0, reverse=True)
    if scheme == "bisect":
        out = [None] * nprocs
        _bisect([0] * nd, list(gshape), list(range(nprocs)), 0, out)
        return out
    raise SystemExit(f"unknown scheme {scheme!r}")


# scheme "all": (provider prefix, write scheme, read scheme)
ALL = [("rows/", "rows", "cols"), ("cols/", "cols", "bisect"), ("bisect/", "bisect", "rows")]


def plan(scheme: str, reading: bool) -> list[tuple[str, str]]:
    """(provider prefix, scheme) pairs a run registers."""
    if scheme != "all":
        return [("", scheme)]
    return [(p, r if reading else w) for p, w, r in ALL]


def local_array(name, scheme, comm, halo, fill_byte):
    gshape, dtype = PROVIDERS[name]
    off, shp = boxes(scheme, gshape, comm.size)[comm.rank]
    a = np.empty(tuple(n + 2 * halo for n in shp), dtype)
    a.reshape(-1).view(np.uint8)[:] = fill_byte
    interior = tuple(slice(halo, halo + n) for n in shp)
    return a, off, interior


def write(repo: str, scheme: str, chunk: int) -> None:
    comm = MPI.COMM_WORLD
    with vlcc.Checkpointer(repo, comm=comm, chunk_size=chunk) as ck:
        for prefix, sch in plan(scheme, False):
            for name, (gshape, dtype) in PROVIDERS.items():
                a, off, interior = local_array(name, sch, comm, WRITE_HALO, 0xA7)
                g = global_data(gshape, dtype)
                a[interior] = g[tuple(slice(o, o + n) for o, n in zip(off, a[interior].shape))]
                ck.register(prefix + name, a, global_shape=gshape, offset=off, halo=WRITE_HALO)
        ck.register("meta", vlcc.ValueProvider(get=lambda: META))
        ck.register("weights", replicated())
        v = ck.checkpoint(step=META["step"], attrs={"scheme": scheme, "nranks": comm.size})
    print(f"NM-OK write rank {comm.rank} version {v.id}", flush=True)


def read(repo: str, scheme: str, atomic: bool = True) -> None:
    comm = MPI.COMM_WORLD
    got_meta = {}
    held = {}
    weights = np.zeros((4, 4))
    with vlcc.Checkpointer(repo, comm=comm) as ck:
        for prefix, sch in plan(scheme, True):
            for name, (gshape, _dtype) in PROVIDERS.items():
                a, off, interior = local_array(name, sch, comm, READ_HALO, 0x3C)
                held[prefix + name] = (a, off, interior)
                ck.register(prefix + name, a, global_shape=gshape, offset=off, halo=READ_HALO)
        ck.register("meta", vlcc.ValueProvider(get=lambda: None, set=got_meta.update))
        ck.register("weights", weights)
        v = ck.restore(atomic=atomic)
    errors = []
    for name, (a, off, interior) in held.items():
        gshape, dtype = PROVIDERS[name.split("/", 1)[1] if scheme == "all" else name]
        exp = global_data(gshape, dtype)[tuple(slice(o, o + n) for o, n in zip(off, a[interior].shape))]
        if a[interior].tobytes() != exp.tobytes():
            bad = np.argwhere(a[interior] != exp)
            errors.append(f"{name}: interior differs at {bad[:3].tolist()} (block offset {off})")
        mask = np.ones(a.shape, bool)
        mask[interior] = False
        if not np.all(a.view(np.uint8).reshape(a.shape + (-1,))[mask] == 0x3C):
            errors.append(f"{name}: the halo was overwritten")
    if got_meta != META:
        errors.append(f"meta: got {got_meta}, expected {META}")
    if weights.tobytes() != replicated().tobytes():
        errors.append("weights: replicated array differs")
    if v.step != META["step"] or v.attrs.get("nranks") != v.nranks:
        errors.append(f"version fields: step {v.step}, attrs {v.attrs}, nranks {v.nranks}")
    if comm.rank == 0:
        repo_ = vlcc.Repository(repo)
        for name in held:
            gshape, dtype = PROVIDERS[name.split("/", 1)[1] if scheme == "all" else name]
            if repo_.read(v, name).tobytes() != global_data(gshape, dtype).tobytes():
                errors.append(f"{name}: Repository.read differs from the global array")
    if errors:
        print(f"rank {comm.rank}: " + "; ".join(errors), file=sys.stderr, flush=True)
        raise SystemExit(1)  # under `python -m mpi4py` this aborts the whole job
    print(f"NM-OK read rank {comm.rank} of {comm.size} version {v.id} written on {v.nranks}",
          flush=True)


if __name__ == "__main__":
    mode, repo, scheme = sys.argv[1:4]
    if mode == "write":
        write(repo, scheme, int(sys.argv[4]))
    elif mode == "read":
        read(repo, scheme, atomic=sys.argv[4:5] != ["direct"])
    else:
        raise SystemExit(f"unknown mode {mode!r}")
