"""Helper for tests/repo/test_space.py (runs under mpiexec -n N python -m mpi4py).

    space_fill.py REPO MNT base     two versions on a small tmpfs mounted at MNT:
        v1 (a distributed array u, a large per-rank array big, a value) and
        v2 (u changed, big unregistered).
    space_fill.py REPO MNT scan     with a filler file leaving exactly R bytes
        free, R = 0, 4 KiB, 8 KiB, ... try a checkpoint until one succeeds:
        every failure must be a VlccError on every rank and leave the
        repository as it was (same manifests and refs, no lock, no temp file,
        no data directory). Prints JSON: each attempt's R and error.
    space_fill.py REPO MNT full     fill the disk completely: a checkpoint fails
        on every rank with a VlccError; the filler stays.
    space_fill.py REPO MNT resume   (filler still there, after vlcc prune + gc)
        a checkpoint succeeds and restores bit-exact on every rank.

Small chunks (128 B) make every rank index larger than the space reserved
beyond the data, so a full disk can also hit the index write."""

import json
import os
import re
import sys

import numpy as np
from mpi4py import MPI

import vlcc

BLOCK = 16384            # float64 per rank of u: 128 KiB
BIG = 32768              # float64 per rank in v1 only: 256 KiB
CHUNK = 128
PAGE = 4096

comm = MPI.COMM_WORLD
repo, mnt, mode = sys.argv[1], sys.argv[2], sys.argv[3]
filler = os.path.join(mnt, "filler")


def u_of(step):
    return np.random.default_rng(step).random(BLOCK * comm.size)


def free():
    st = os.statvfs(mnt)
    return st.f_bavail * st.f_frsize


def fill(leave):
    """Rank 0: a filler file leaving ``leave`` bytes free (None: no filler)."""
    if comm.rank == 0:
        if os.path.exists(filler):
            os.unlink(filler)
        if leave is not None:
            n = free() - leave
            assert n >= 0, (n, leave)
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                if n:
                    os.posix_fallocate(fd, 0, n)
            finally:
                os.close(fd)
            assert free() == leave, (free(), leave)
    comm.Barrier()


def open_ck(step):
    ck = vlcc.Checkpointer(repo, comm=comm, chunk_size=CHUNK)
    u = u_of(step)[comm.rank * BLOCK:(comm.rank + 1) * BLOCK].copy()
    ck.register("u", u, global_shape=(BLOCK * comm.size,), offset=(comm.rank * BLOCK,))
    ck.register("t", vlcc.ValueProvider(get=lambda: {"step": step}, set=lambda v: None))
    return ck, u


def snapshot():
    """What a failed checkpoint must not change (rank 0)."""
    lay = os.path.join
    refs = {}
    for root, _d, files in os.walk(lay(repo, "refs")):
        for f in files:
            with open(lay(root, f)) as fh:
                refs[os.path.relpath(lay(root, f), repo)] = fh.read()
    return {"versions": sorted(os.listdir(lay(repo, "versions"))), "refs": refs,
            "data": sorted(os.listdir(lay(repo, "data"))), "locks": sorted(os.listdir(lay(repo, "locks")))}


def temp_left():
    return [os.path.join(r, f) for r, ds, fs in os.walk(repo) for f in fs + ds
            if f.startswith(".tmp-") or f.endswith(".tmp-promote")]


def attempt(ck):
    try:
        v = ck.checkpoint(step=3)
        res = {"ok": True, "id": v.id}
    except BaseException as exc:   # noqa: BLE001 — a non-VlccError is the failure we look for
        res = {"ok": False, "type": type(exc).__name__, "vlcc": isinstance(exc, vlcc.VlccError),
               "msg": str(exc)}
    return comm.gather(res, root=0)


def out(doc):
    if comm.rank == 0:
        print(json.dumps(doc), flush=True)


if mode == "base":
    ck, u = open_ck(1)
    big = np.random.default_rng(100 + comm.rank).random(BIG)
    ck.register("big", big)
    v1 = ck.checkpoint(step=1)
    ck.unregister("big")
    u[:] = u_of(2)[comm.rank * BLOCK:(comm.rank + 1) * BLOCK]
    v2 = ck.checkpoint(step=2)
    ck.close()
    out({"v1": v1.id, "v2": v2.id})

elif mode == "scan":
    ck, u = open_ck(3)
    before = snapshot() if comm.rank == 0 else None
    attempts = []
    leave = 0
    while True:
        fill(leave)
        res = attempt(ck)
        ok = comm.bcast(res[0]["ok"] if comm.rank == 0 else None, root=0)
        if comm.rank == 0:
            attempts.append({"free": leave, "ranks": res})
            if not ok:
                now = snapshot()
                assert now == before, f"free {leave}: failed checkpoint changed the repository: {before} -> {now}"
                assert not temp_left(), f"free {leave}: temp files left: {temp_left()}"
        if ok or leave > (8 << 20):
            break
        if leave == 0 and comm.rank == 0:
            # the data stage fails until one rank's reservation fits: skip most of
            # it (the message says what one rank needs)
            m = re.search(r"needs ([0-9.]+) KiB", res[0]["msg"])
            jump = int(float(m.group(1)) * 1024 * 0.9) // PAGE * PAGE if m else PAGE
        leave = comm.bcast(max(jump, PAGE) if leave == 0 and comm.rank == 0 else leave + PAGE, root=0)
    fill(None)
    ck.close()
    out({"attempts": attempts})

elif mode == "full":
    ck, u = open_ck(4)
    fill(0)
    res = attempt(ck)
    if comm.rank == 0:
        assert not temp_left(), temp_left()
    ck.close()
    out({"ranks": res, "free": free()})

elif mode == "resume":
    ck, u = open_ck(5)
    v = ck.checkpoint(step=5)
    u[:] = 0
    ck.restore(v.id)
    same = bool(np.array_equal(u, u_of(5)[comm.rank * BLOCK:(comm.rank + 1) * BLOCK]))
    ck.close()
    out({"id": v.id, "bit_exact": comm.gather(same, root=0), "free": free()})
