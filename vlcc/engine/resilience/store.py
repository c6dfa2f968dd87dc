"""A node's directory for one repository in the node-local tier.

``<node dir>/vlcc-store-<key>/`` (``key``: xxh3-64 of the repository's
absolute path; ``store.json`` names the repository) holds the repository's
relative layout for the files the node's ranks wrote (``data/<V>/r<R>.bp``,
``data/<V>/r<R>.idx.json``) and ``redundancy/<V>/``: ``layout.json`` (the
same on every node) and the parity or partner shares this node keeps,
``parity-<stripe>-<q>-<xxh3>.bin``. Unlike the per-process spill directory
it outlives the process: a restart finds it (docs/format.md,
"Node-local redundancy")."""

from __future__ import annotations

import json
import mmap
import os
import shutil

import numpy as np
import xxhash

from ...repo.fsutil import atomic_write, fsync_dir, fsync_file, makedirs
from ...io.nodefile import node_tmp_rel
from ...repo.paths import RepoPaths

MARK = "store.json"       # engine/local.py's reclaim keeps directories holding it
LAYOUT = "layout.json"


def store_key(repo_root: str) -> str:
    return xxhash.xxh3_64_hexdigest(os.path.realpath(repo_root).encode())


def digest(buf) -> str:
    return xxhash.xxh3_128_hexdigest(buf)


class NodeStore:
    """A node's store of one repository; ``NodeStore.at(root)``: the same
    interface over the stage (engine.Engine.stage: a node leader's local
    tier directory, where the node's ranks write node files to promote)."""

    def __init__(self, node_dir: str, repo_root: str):
        self.node_dir = node_dir
        self.root = os.path.join(node_dir, f"vlcc-store-{store_key(repo_root)}")
        self.layout = RepoPaths(self.root)
        self.repo_root = repo_root

    @classmethod
    def at(cls, root: str, repo_root: str) -> "NodeStore":
        """A store at ``root`` itself (the stage: a node leader's local tier directory)."""
        self = cls.__new__(cls)
        self.node_dir, self.root, self.repo_root = os.path.dirname(root), root, repo_root
        self.layout = RepoPaths(root)
        return self

    def open(self) -> "NodeStore":
        """Create the directory (and its marker) if missing."""
        makedirs(self.root)
        mark = os.path.join(self.root, MARK)
        if not os.path.exists(mark):
            atomic_write(mark, json.dumps({"repository": os.path.realpath(self.repo_root)}).encode())
        return self

    def red_dir(self, vid: str) -> str:
        return os.path.join(self.root, "redundancy", vid)

    # -- a rank's files --------------------------------------------------------------------
    def rank_files(self, vid: str, rank: int) -> list[str]:
        """Repository-relative files rank ``rank`` wrote for ``vid`` here, sorted,
        the index file last (a copy made in this order is complete once the
        index exists)."""
        return self._files(self.layout.rel_data_file(vid, rank),
                           self.layout.rel_index_file(vid, rank))

    def node_files(self, vid: str, node: int) -> list[str]:
        """Repository-relative files of node ``node``'s node file of ``vid``
        here (docs/format.md, 3.4), sorted, the node index last; [] when the
        node wrote none."""
        return self._files(self.layout.rel_node_data_file(vid, node),
                           self.layout.rel_node_index_file(vid, node))

    def _files(self, bp: str, idx: str) -> list[str]:
        """The files of BP5 directory ``bp`` here, sorted, then index ``idx`` if present."""
        out = []
        top = self.layout.abs(bp)
        for d, _dirs, files in os.walk(top):
            _dirs.sort()
            for f in sorted(files):
                out.append(bp + "/" + os.path.relpath(os.path.join(d, f), top).replace(os.sep, "/"))
        if os.path.exists(self.layout.abs(idx)):
            out.append(idx)
        return out

    def files_of(self, vid: str, rank: int, node: int | None, leader: bool) -> list[str]:
        """What rank ``rank`` is responsible for of ``vid`` here: with node
        files (``node`` not None) the node leader the node's files, the other
        ranks nothing; else the rank's own files."""
        if node is None:
            return self.rank_files(vid, rank)
        return self.node_files(vid, node) if leader else []

    def describe(self, rels: list[str], hashed: bool = True) -> list[list]:
        """``[rel, size, xxh3-128]`` of each file (the hash ``None`` unless
        ``hashed``), hashed through a mapping: no copy of the bytes."""
        out = []
        for rel in rels:
            with _mapped(self.layout.abs(rel)) as buf:
                out.append([rel, len(buf), digest(buf) if hashed else None])
        return out

    def has_files(self, table: list[list]) -> bool:
        """Are all files of ``table`` here with their recorded sizes?"""
        for rel, size, _d in table:
            try:
                if os.path.getsize(self.layout.abs(rel)) != size:
                    return False
            except OSError:
                return False
        return True

    def read_range(self, table: list[list], start: int, n: int, size: int = 0) -> np.ndarray:
        """Bytes ``[start, start+n)`` of the concatenation of ``table``'s files in a
        buffer of ``max(n, size)`` bytes, zero past the files' end (padding).
        A range inside one file needing no padding is a read-only view of
        a mapping of that file (sent or encoded without a copy: most of a
        node's bytes are its data.0); else the bytes are copied."""
        want = max(n, size)
        pos = 0
        for rel, fsize, _d in table:
            if pos <= start and start + want <= pos + fsize and fsize:
                with open(self.layout.abs(rel), "rb") as f:
                    mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                return np.frombuffer(mm, np.uint8, want, start - pos)
            pos += fsize
        out = np.empty(want, np.uint8)
        pos = 0
        filled = 0
        for rel, fsize, _d in table:
            lo, hi = max(start, pos), min(start + n, pos + fsize)
            if lo < hi:
                with open(self.layout.abs(rel), "rb") as f:
                    f.seek(lo - pos)
                    f.readinto(memoryview(out[lo - start:hi - start]))
                filled = hi - start
            pos += fsize
            if pos >= start + n:
                break
        out[filled:] = 0          # past the files' end: padding (only that is zeroed)
        return out

    def promote(self, persistent: RepoPaths, vid: str, rank: int, node: int | None = None,
                leader: bool = False) -> None:
        """Copy rank ``rank``'s files of ``vid`` (``files_of``) to the persistent
        tier, durably, the index last."""
        for rel in self.files_of(vid, rank, node, leader):
            copy_file(self.layout.abs(rel), persistent.abs(rel))
        d = persistent.data_dir(vid)
        if os.path.isdir(d):
            fsync_dir(d)

    def promote_range(self, persistent: RepoPaths, vid: str, node: int,
                      rng: tuple[int, int] | None) -> None:
        """Node files: copy this rank's range ``(start, nbytes)`` of node file
        ``node``'s data.0 into the persistent tier's in-flight data.0 of that
        node (``io/nodefile.node_tmp_rel``), at the same offset, durably. The
        ranks of a node copy their ranges in parallel (one copier per node
        was 1.45-1.9x slower at 2 ranks per node: benchmarks/bench_files.py
        --modes); then the leader runs ``promote_rest``."""
        if rng is None:
            return
        start, n = rng
        src = self.layout.abs(self.layout.rel_node_data_file(vid, node) + "/data.0")
        dst = persistent.abs(node_tmp_rel(vid, node))
        makedirs(os.path.dirname(dst))
        copy_range(src, dst, start, n)

    def promote_rest(self, persistent: RepoPaths, vid: str, node: int) -> None:
        """The node leader, once every rank's range is durable: the node file's
        BP5 metadata, its data.0 moved into place, then the node index (last:
        a reader finds the files complete once it exists)."""
        files = self.node_files(vid, node)
        bp = self.layout.rel_node_data_file(vid, node)
        idx = self.layout.rel_node_index_file(vid, node)
        for rel in files:
            if rel not in (idx, bp + "/data.0"):
                copy_file(self.layout.abs(rel), persistent.abs(rel))
        if bp + "/data.0" in files:
            final = persistent.abs(bp + "/data.0")
            os.replace(persistent.abs(node_tmp_rel(vid, node)), final)
            fsync_dir(os.path.dirname(final))
        if idx in files:
            copy_file(self.layout.abs(idx), persistent.abs(idx))
        d = persistent.data_dir(vid)
        if os.path.isdir(d):
            fsync_dir(d)

    # -- redundancy files -------------------------------------------------------------------
    def write_share(self, vid: str, stripe: int, q: int, buf: np.ndarray) -> str:
        d = self.red_dir(vid)
        makedirs(d)
        name = f"parity-{stripe}-{q}-{digest(buf)}.bin"
        tmp = os.path.join(d, name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(memoryview(buf))
        fsync_file(tmp)
        os.replace(tmp, os.path.join(d, name))
        return name

    def shares(self, vid: str) -> dict[tuple[int, int], str]:
        """(stripe, q) -> file name of the shares kept here."""
        out = {}
        try:
            names = os.listdir(self.red_dir(vid))
        except OSError:
            return out
        for name in names:
            parts = name[:-4].split("-") if name.endswith(".bin") else []
            if len(parts) == 4 and parts[0] == "parity":
                out[(int(parts[1]), int(parts[2]))] = name
        return out

    def read_share(self, vid: str, name: str) -> np.ndarray:
        with open(os.path.join(self.red_dir(vid), name), "rb") as f:
            return np.frombuffer(f.read(), np.uint8)

    def write_layout(self, vid: str, doc: dict) -> None:
        d = self.red_dir(vid)
        makedirs(d)
        atomic_write(os.path.join(d, LAYOUT), json.dumps(doc, sort_keys=True).encode())

    def read_layout(self, vid: str) -> dict | None:
        try:
            with open(os.path.join(self.red_dir(vid), LAYOUT), "rb") as f:
                return json.loads(f.read())
        except (OSError, ValueError):
            return None

    def fsync(self, vid: str) -> None:
        for d in (self.layout.data_dir(vid), self.red_dir(vid)):
            if os.path.isdir(d):
                fsync_dir(d)

    # -- eviction ----------------------------------------------------------------------------
    def evict(self, vid: str, rank: int, leader: bool, node: int | None = None) -> None:
        d = self.layout.data_dir(vid)
        shutil.rmtree(self.layout.abs(self.layout.rel_data_file(vid, rank)), ignore_errors=True)
        try:
            os.unlink(self.layout.abs(self.layout.rel_index_file(vid, rank)))
        except OSError:
            pass
        if leader and node is not None:
            shutil.rmtree(self.layout.abs(self.layout.rel_node_data_file(vid, node)),
                          ignore_errors=True)
            try:
                os.unlink(self.layout.abs(self.layout.rel_node_index_file(vid, node)))
            except OSError:
                pass
        if leader:
            shutil.rmtree(self.red_dir(vid), ignore_errors=True)
        for p in (d, self.red_dir(vid)):
            try:
                os.rmdir(p)
            except OSError:
                pass


class _mapped:
    """A read-only mapping of a whole file as a buffer (b"" when empty)."""

    def __init__(self, path: str):
        self.path = path
        self.mm = None

    def __enter__(self):
        with open(self.path, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                return b""
            self.mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        return self.mm

    def __exit__(self, *exc):
        if self.mm is not None:
            self.mm.close()


def copy_range(src: str, dst: str, start: int, n: int) -> None:
    """Bytes ``[start, start+n)`` of ``src`` into ``dst`` at the same offset
    (created if missing, never truncated: other ranks write other ranges),
    durably; in the kernel (copy_file_range) where it can."""
    fi = os.open(src, os.O_RDONLY)
    try:
        fo = os.open(dst, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            done = 0
            while done < n:
                try:
                    k = os.copy_file_range(fi, fo, n - done, start + done, start + done)
                except (AttributeError, OSError):
                    k = os.pwrite(fo, os.pread(fi, min(n - done, 8 << 20), start + done),
                                  start + done)
                if k <= 0:
                    raise OSError(f"{src}: ends before byte {start + n} (copying to {dst})")
                done += k
            os.fsync(fo)
        finally:
            os.close(fo)
    finally:
        os.close(fi)


def copy_file(src: str, dst: str) -> None:
    """Copy durably under a temporary name, then rename (a reader never sees half a file)."""
    makedirs(os.path.dirname(dst))
    tmp = dst + ".tmp-recover"
    shutil.copyfile(src, tmp)
    fsync_file(tmp)
    os.replace(tmp, dst)


def write_file(dst: str, buf) -> None:
    makedirs(os.path.dirname(dst))
    tmp = dst + ".tmp-recover"
    with open(tmp, "wb") as f:
        f.write(memoryview(buf))
    fsync_file(tmp)
    os.replace(tmp, dst)


__all__ = ["NodeStore", "MARK", "LAYOUT", "digest", "store_key", "copy_file", "write_file"]
