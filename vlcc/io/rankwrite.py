"""Write one rank's part of a version: chunk, hash and store every leaf's
bytes in the rank's BP5 file, then publish the rank's chunk index. Everything
is fsync'ed before this returns, so the commit may reference it."""

from __future__ import annotations

import os

import numpy as np

from ..errors import StorageError, storage_error
from ..layout.chunking import chunk_bounds
from ..redundancy.hashing import chunk_hash, digest_of
from ..repo.fsutil import atomic_write, fsync_tree, makedirs
from ..repo.layout import Layout
from ..repo.manifest import INDEX_VERSION, seal
from ..state.provider import Leaf
from .bp5 import BlockWriter


def write_rank(layout: Layout, vid: str, rank: int, leaves: list[Leaf], chunk_size: int) -> dict:
    """Store ``leaves`` for ``rank`` of version ``vid``. Returns what the
    manifest needs: per-leaf nbytes/digest and the index file with its checksum."""
    rel_bp = layout.rel_data_file(vid, rank)
    rel_idx = layout.rel_index_file(vid, rank)
    makedirs(layout.data_dir(vid))
    index = {"vlcc_index": INDEX_VERSION, "version": vid, "rank": rank,
             "files": [rel_bp], "codecs": [{"id": "raw"}], "leaves": {}}
    summary = {}
    writer = None
    try:
        writer = BlockWriter(layout.abs(rel_bp))
        for leaf in leaves:
            data = leaf.data
            chunks = []
            for start, length in chunk_bounds(data.size, chunk_size):
                h = chunk_hash(data[start:start + length])
                chunks.append([0, leaf.name, start, length, length, h, 0])
            if data.size:
                writer.put(leaf.name, data)
            index["leaves"][leaf.name] = {"nbytes": int(data.size), "chunk_size": chunk_size,
                                          "chunks": chunks}
            summary[leaf.name] = {"nbytes": int(data.size),
                                  "digest": digest_of([c[5] for c in chunks])}
        writer.close()
        writer = None
        fsync_tree(layout.abs(rel_bp))
    except OSError as exc:
        raise storage_error(exc, f"rank {rank}: cannot write data of version {vid}") from exc
    except StorageError as exc:
        raise StorageError(f"rank {rank}: {exc}") from exc
    finally:
        if writer is not None:
            try:
                writer.close()
            except Exception:
                pass
    raw = seal(index)
    atomic_write(layout.abs(rel_idx), raw)
    return {"leaves": summary, "index": rel_idx, "index_checksum": chunk_hash(raw),
            "host": os.uname().nodename}
