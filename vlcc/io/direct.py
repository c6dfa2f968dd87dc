"""Write a file's bytes with O_DIRECT: from the caller's memory to the device,
bypassing the page cache.

Why (measured, benchmarks/bench_async.py and docs/architecture.md): a
buffered write of a checkpoint copies it into page-cache pages the kernel must
first allocate, and on a virtual machine whose free guest memory is handed
back to the host, allocating 64 MiB of fresh pages cost ~250 ms of CPU. The
flush of an async checkpoint then competes for memory bandwidth and CPU with
the application it is meant to hide behind. O_DIRECT moves the bytes by DMA
from the capture buffer: no copy, no page cache, ~20 ms of CPU per 64 MiB.

O_DIRECT needs the memory address, the file offset and the length aligned to
the device's logical block (``ALIGN`` covers 4 KiB sectors). Page-aligned
runs of a segment (capture buffers are page-aligned mappings) go straight
from the caller's memory; everything else goes through one reusable,
page-aligned bounce buffer. File systems without O_DIRECT (tmpfs) get plain
writes of the same bytes."""

from __future__ import annotations

import mmap
import os
import threading

import numpy as np

ALIGN = 4096
BOUNCE = 8 << 20          # bounce buffer: large I/Os, small enough to stay in cache
_local = threading.local()


def _bounce() -> np.ndarray:
    b = getattr(_local, "bounce", None)
    if b is None:
        b = np.frombuffer(mmap.mmap(-1, BOUNCE), np.uint8)   # page-aligned, faulted on first use
        _local.bounce = b
    return b


def _aligned(a: np.ndarray) -> bool:
    return a.ctypes.data % ALIGN == 0


def open_direct(path: str) -> tuple[int, bool]:
    """Open ``path`` for writing (created if missing, not truncated: blocks
    reserved with fallocate stay reserved); O_DIRECT where the file system
    takes it. Returns (fd, direct)."""
    flags = os.O_WRONLY | os.O_CREAT
    odirect = getattr(os, "O_DIRECT", 0)
    if odirect and os.environ.get("VLCC_DIRECT_IO", "1").strip().lower() not in ("0", "no", "off"):
        try:
            return os.open(path, flags | odirect, 0o644), True
        except OSError:
            pass            # EINVAL: tmpfs and others refuse O_DIRECT
    return os.open(path, flags, 0o644), False


def write_concat(path: str, segments: list) -> int:
    """Write the concatenation of the flat uint8 ``segments`` (arrays, or lazy
    bytes with ``size`` and ``copy_to(out, start)``: layout/stored.py) as the whole
    content of file ``path``. Returns the number of bytes. The caller fsyncs
    (O_DIRECT skips the page cache, not the device's write cache)."""
    fd, direct = open_direct(path)
    try:
        pos = _write(fd, segments, direct)
        # the exact size: drops a padded last block and blocks reserved past it
        os.ftruncate(fd, pos)
    finally:
        os.close(fd)
    return pos


def write_at(path: str, start: int, segments: list, *, sync: bool = True) -> int:
    """Write the concatenation of ``segments`` into file ``path`` (created if
    missing, never truncated) from byte ``start`` on: one rank's range of a
    node file shared by the ranks of a node (docs/format.md, 3.4). ``start``
    is a multiple of ALIGN; with O_DIRECT the last block is padded with zeros
    up to ALIGN, which the layout reserves (the rank's ``.pad`` variable).
    Returns the end offset; with ``sync`` the bytes are on the device."""
    if start % ALIGN:
        raise ValueError(f"write_at: start {start} is not a multiple of {ALIGN}")
    fd, direct = open_direct(path)
    try:
        end = _write(fd, segments, direct, start)
        if sync:
            os.fsync(fd)
        return end
    finally:
        os.close(fd)


def _write(fd: int, segments: list, direct: bool, start: int = 0) -> int:
    if not direct:
        pos = start
        for seg in segments:
            if isinstance(seg, np.ndarray):
                _pwrite_all(fd, seg, pos)
            else:           # lazy bytes (layout/stored.py): through the bounce buffer
                bounce = _bounce()
                for s in range(0, seg.size, BOUNCE):
                    k = min(BOUNCE, seg.size - s)
                    seg.copy_to(bounce[:k], s)
                    _pwrite_all(fd, bounce[:k], pos + s)
            pos += seg.size
        return pos
    bounce = _bounce()
    pos, fill = start, 0     # pos: file offset of bounce[0]; fill: bytes in bounce
    for seg in segments:
        s = 0
        array = isinstance(seg, np.ndarray)
        while s < seg.size:
            if array and fill == 0 and _aligned(seg[s:]) and seg.size - s >= ALIGN:
                # file offset and memory both aligned: DMA from the caller's memory
                n = (seg.size - s) // ALIGN * ALIGN
                _pwrite_all(fd, seg[s:s + n], pos)
                pos += n
                s += n
                continue
            k = min(BOUNCE - fill, seg.size - s)
            if array:
                np.copyto(bounce[fill:fill + k], seg[s:s + k])
            else:           # lazy bytes: the tile-major gather is this copy
                seg.copy_to(bounce[fill:fill + k], s)
            fill += k
            s += k
            if fill == BOUNCE:
                _pwrite_all(fd, bounce, pos)
                pos += BOUNCE
                fill = 0
    if fill:
        n = -(-fill // ALIGN) * ALIGN
        bounce[fill:n] = 0
        _pwrite_all(fd, bounce[:n], pos)
        pos += fill
    return pos


def _pwrite_all(fd: int, buf: np.ndarray, pos: int) -> None:
    mv = memoryview(buf).cast("B")
    done = 0
    while done < len(mv):
        done += os.pwrite(fd, mv[done:], pos + done)
