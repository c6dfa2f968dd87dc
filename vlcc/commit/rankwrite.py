"""Write one rank's part of a version (docs/format.md, sections 3 and
"Redundancy and encoding").

Two steps so that ranks can agree on shared chunks in between:

1. ``prepare_rank`` (local): coalesce small leaves into one pack leaf
   (layout/coalesce.py; their manifest blocks then say where in the pack
   they are), cut every leaf into chunks, hash them (only the
   dirty ones with a tracking ChunkHasher), look each chunk up in the
   parent's chunk table (found: a reference, nothing to write), encode the
   rest with the leaf's codec. The result offers the not-yet-stored chunks.
2. the caller allgathers the offers and runs ``dedup.assign_owners`` (the
   first rank offering a hash writes it); ``write_rank`` then writes the
   chunks this rank owns, packed per leaf into one variable of its BP5 file,
   and publishes the rank index (every chunk: file, variable, offset, sizes,
   hash, codec). Everything is fsync'ed before it returns."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..encode import Codec, get_codec
from ..encode.raw import Raw
from .. import settings
from ..errors import StorageError, storage_error
from ..io.bp5 import BlockWriter, bp5_checksums
from ..io.nodefile import (NodeLayout, node_layout, node_tmp_rel, node_var, place_data,
                           write_metadata, write_range)
from ..layout.chunking import chunk_bounds
from ..layout.coalesce import Packed, coalesce
from ..layout.stored import Chain, TileMajor, is_lazy
from ..engine.buffers import SizePool, available_memory, mapped
from ..layout.tiles import gather, is_contiguous, piece_bounds, pieces, tile_shape
from ..redundancy.dedup import (ChunkTable, Offer, StoredChunk, assign_owners, codec_key,
                                load_parent_indexes, place_own)
from ..redundancy.dirty import ChunkHasher
from ..repo.checksums import chunk_hash, digest_of
from ..repo.fsutil import atomic_write, fsync_tree, makedirs
from ..repo.index import INDEX_VERSION
from ..repo.paths import RepoPaths
from ..repo.records import ChunkEntry, IndexLeaf, Kind
from ..repo.sealed import seal
from ..state.provider import Leaf
from ..comm.nodes import NodeMap, node_comm, node_map
from ..comm.protocol import allgather, any_bits, from_root, gather_decide, release

RAW = {"id": "raw"}


@dataclass
class LeafPlan:
    leaf: Leaf
    hashes: list
    # per chunk: ("ref", StoredChunk) or ("new", offer position)
    where: list = field(default_factory=list)
    data: np.ndarray | None = None      # the stored bytes (a tiled leaf: its pieces back to back)
    bounds: list = field(default_factory=list)   # (start, length) of each chunk in ``data``
    tile: tuple | None = None           # the global tile of a tiled leaf (format 3.3)
    gathered: bool = False              # ``data`` is a recycled gather buffer (released after write)


def stored_layout(leaf: Leaf, chunk_size: int, hashes: list | None = None,
                  lazy: bool = False) -> tuple:
    """How a leaf is cut into chunks (docs/format.md, 3 and 3.3): a
    distributed leaf on the global tile grid — its pieces back to back in
    tile-major order, one chunk each — every other leaf into fixed-size
    chunks of its flat bytes. Returns (stored bytes, chunk bounds, tile or
    None). When the pieces are not already in C order the stored bytes are
    a gather into a recycled buffer or, with ``lazy`` when no such buffer may
    be had (``gather_allowed``), a ``layout.stored.TileMajor`` read out of
    the block as needed.
    ``hashes``: a list to receive the chunk hashes of such a leaf, computed
    piece by piece while each is in cache (left empty when the pieces are
    the block's own bytes)."""
    if leaf.kind == Kind.DISTRIBUTED and leaf.global_shape is not None:
        itemsize = np.dtype(leaf.dtype).itemsize
        tile = tile_shape(leaf.global_shape, itemsize, chunk_size)
        ps = pieces(leaf.offset, leaf.shape, tile)
        if is_contiguous(leaf.offset, leaf.shape, ps):
            return leaf.data, piece_bounds(ps, itemsize), tile
        buf = _gather_buffer(leaf.data.size, lean_ok=lazy)
        if buf is None:
            tm = TileMajor(leaf.data, leaf.offset, leaf.shape, ps, itemsize)
            if hashes is not None:
                hashes.extend(tm.hash_pieces())
            return tm, tm.bounds, tile
        each = None if hashes is None else (lambda _k, b: hashes.append(chunk_hash(b)))
        data = gather(leaf.data, leaf.offset, leaf.shape, ps, itemsize, buf, each)
        return data, piece_bounds(ps, itemsize), tile
    return leaf.data, chunk_bounds(leaf.data.size, chunk_size), None


# Gather buffers of tiled leaves, recycled once their version is written: a
# fresh 64 MiB buffer costs ~100 ms of page faults here (more on a VM that
# hands free memory back to its host), the gather itself ~12 ms. A version
# still being written keeps its buffer (the free list is only refilled by
# ``write_rank``), so an application-thread prepare never reuses one in use.
#
# A gather buffer is a second copy of the block, outside the memory budget.
# When a new one would take more than GATHER_SHARE of the memory available
# (``VLCC_GATHER_MAX`` bytes overrides), the flush reads the pieces out of
# the block instead (layout/stored.py): no second copy, but ~20 ms more CPU
# per 64 MiB (a hashing pass through a scratch buffer, then the bounce copy
# of the write), measured with 1 rank and a tiled 2-D leaf: ~55 against ~35 ms.
GATHER_POOL = SizePool(keep=2)
GATHER_SHARE = 8


def gather_allowed(n: int) -> bool:
    """May a new gather buffer of ``n`` bytes be allocated?"""
    env = (settings.get("VLCC_GATHER_MAX") or "").strip()
    limit = int(env) if env else available_memory() // GATHER_SHARE
    return n <= limit


def _gather_buffer(n: int, lean_ok: bool = False) -> np.ndarray | None:
    """A recycled gather buffer of ``n`` bytes, else a new one; None when
    ``lean_ok`` and a new one is not ``gather_allowed``."""
    b = GATHER_POOL.take(n)
    if b is not None:
        return b
    if lean_ok and not gather_allowed(n):
        return None
    return mapped(n)


def needs_gather(leaf_offset, leaf_shape, global_shape, itemsize: int, chunk_size: int) -> bool:
    """Will a distributed block be gathered into tile-major order when stored?"""
    tile = tile_shape(global_shape, itemsize, chunk_size)
    return not is_contiguous(leaf_offset, leaf_shape, pieces(leaf_offset, leaf_shape, tile))


def reserve_gather(n: int) -> None:
    """Fault in a gather buffer of ``n`` bytes ahead of the first flush (called
    in the background at register). Faulting 64 MiB in the flusher during
    the first flush cost the application ~100 ms on this VM: the fault storm
    competes with the application's own mmap/munmap of numpy temporaries."""
    GATHER_POOL.reserve(n, lambda: mapped(n, huge=True))


def _release_gathered(plan: "RankPlan") -> None:
    for lp in plan.leaves:
        if lp.gathered and lp.data is not None:
            GATHER_POOL.give(lp.data)
            lp.data = None


@dataclass
class RankPlan:
    rank: int
    chunk_size: int
    leaves: list                                  # LeafPlan, in capture order
    offer: dict                                   # {"codecs": [...], "chunks": [...]}
    payload: list                                 # encoded bytes per offered chunk
    assignment: list | None = None                # per offered chunk (owner, var, off, stored, codec)
    stats: dict = field(default_factory=dict)
    index: dict | None = None                     # the index written (kept for the next dedup)
    packed: Packed | None = None                  # small leaves coalesced into one pack leaf
    digests: dict = field(default_factory=dict)   # leaf name -> block digest (format 4)
    replicated: dict | None = None                # rank 0: leaf name -> same on every rank
    node: "NodePlan | None" = None                # node files (format 3.4); None: own file


def node_files_enabled() -> bool:
    """Node files (docs/format.md, 3.4) unless ``VLCC_NODE_FILES=0`` (one
    file per rank, as format 3 wrote: for comparisons and as a way out)."""
    return settings.flag("VLCC_NODE_FILES")


def _leaf_codec(leaf: Leaf, codecs) -> Codec | None:
    if not codecs:
        return None
    c = codecs.get(leaf.name) or (codecs.get(leaf.of) if leaf.of else None)
    if c is None:
        return None
    return c.for_dtype(leaf.dtype)


def prepare_rank(rank: int, leaves: list[Leaf], chunk_size: int, *, parent: ChunkTable | None = None,
                 codecs: dict[str, Codec] | None = None, hasher: ChunkHasher | None = None,
                 coalesce_below: int = 0) -> RankPlan:
    hasher = hasher or ChunkHasher()
    logical = int(sum(l.data.size for l in leaves))
    # layout: small leaves without a codec of their own go into one pack leaf
    leaves, packed = coalesce(leaves, coalesce_below, chunk_size,
                              exclude=lambda l: _leaf_codec(l, codecs) is not None)
    parent = parent or ChunkTable()
    offer = {"codecs": [], "chunks": []}
    ckeys: dict[str, int] = {}
    payload = []
    plans = []
    n_ref = n_chunks = dirty = 0
    for leaf in leaves:
        fused: list | None = None if hasher.track else []
        # Lazy stored bytes (no gather buffer) when nothing needs them in
        # one buffer: the dirty tracker compares buffers, codecs encode them.
        lazy = not hasher.track and _leaf_codec(leaf, codecs) is None
        data, bounds, tile = stored_layout(leaf, chunk_size, fused, lazy=lazy)
        if fused:               # hashed during the gather (no dirty tracking)
            hashes = fused
            hasher.last_dirty[leaf.name] = len(hashes)
        else:
            hashes = hasher.hashes(leaf.name, data, chunk_size, None if tile is None else bounds)
        dirty += hasher.last_dirty.get(leaf.name, len(hashes))
        codec = _leaf_codec(leaf, codecs)
        lossy = None
        if codec is not None and not codec.lossless:
            # Lossy leaf (encode/zfp.py): encode every chunk first and key it on
            # the hash of its DECODED bytes — what a restore returns and what
            # restore/verify check — so dedup never matches it against the
            # original bytes. Chunks the codec leaves alone keep their raw hash.
            hashes = list(hashes)
            lossy = []
            for i, (start, length) in enumerate(bounds):
                res = codec.encode_lossy(data[start:start + length], start)
                if res is not None and len(res[0]) < length:
                    hashes[i] = chunk_hash(res[1])
                    lossy.append(np.frombuffer(res[0], np.uint8))
                else:
                    lossy.append(None)
        lp = LeafPlan(leaf, hashes, data=data, bounds=bounds, tile=tile,
                      gathered=data is not leaf.data and not is_lazy(data))
        for i, ((start, length), h) in enumerate(zip(bounds, hashes)):
            n_chunks += 1
            hit = parent.get(h, length)
            if hit is not None:
                lp.where.append(("ref", hit))
                n_ref += 1
                continue
            view = data.range(start, length) if is_lazy(data) else data[start:start + length]
            cfg, buf = RAW, view
            if lossy is not None:
                if lossy[i] is not None:
                    cfg, buf = codec.get_config(), lossy[i]
            elif codec is not None and not isinstance(codec, Raw):
                enc = codec.encode(view)
                if len(enc) < length:   # incompressible chunks stay raw
                    cfg, buf = codec.get_config(), np.frombuffer(enc, np.uint8)
            k = codec_key(cfg)
            ci = ckeys.get(k)
            if ci is None:
                ci = ckeys[k] = len(offer["codecs"])
                offer["codecs"].append(cfg)
            lp.where.append(("new", len(offer["chunks"])))
            offer["chunks"].append(Offer(h, length, int(buf.size), leaf.name, ci))
            payload.append(buf)
        plans.append(lp)
    stats = {"chunks": n_chunks, "parent_refs": n_ref, "hashed_chunks": dirty,
             "logical_bytes": logical, "packed_leaves": len(packed.leaves)}
    digests = {lp.leaf.name: digest_of(lp.hashes) for lp in plans} | packed.digests
    return RankPlan(rank, chunk_size, plans, offer, payload, stats=stats, packed=packed,
                    digests=digests)


@dataclass
class NodePlan:
    """Where a version's data goes when the ranks of a node share files
    (docs/format.md, 3.4): every rank's node, this node's ranks, the node
    file's layout, and the node communicator the leader gathers the indexes on."""
    nodes: NodeMap
    comm: object
    layout: NodeLayout

    @property
    def node(self) -> int:
        return self.nodes.node

    @property
    def is_leader(self) -> bool:
        return self.nodes.is_leader


@dataclass
class NodeFinish:
    """A node file whose ranks wrote their ranges without MPI (async, the
    flusher calling no MPI): ``finish_node`` completes it, collectively over
    the node, on the application's thread (docs/format.md, 3.4)."""
    layout: RepoPaths
    vid: str
    node: NodePlan
    part: dict                      # this rank's index (as the node index holds it)
    offsets: dict | None            # the leader: where ADIOS2 put each variable


def finish_node(fin: NodeFinish) -> str:
    """Collective over the node (application's thread): the leader places the
    node's data.0 and writes the node index from every rank's part. Returns
    the node index's checksum (the rank table's record)."""
    return gather_decide(fin.node.comm, lambda: fin.part,
                         lambda parts: _write_node_index(fin.layout, fin.vid, fin.node, parts,
                                                         fin.offsets))


def write_rank(layout: RepoPaths, vid: str, rank: int, plan: RankPlan, defer: bool = False) -> dict:
    """Store this rank's part of version ``vid`` as prepared in ``plan``;
    without an ``assignment`` (dedup off: no agreement between ranks) this
    rank writes every chunk it offers. Returns what the manifest needs:
    per-leaf nbytes/digest, the index file and its checksum, and write
    statistics. With ``plan.node`` (node files) this is collective over the
    node: the leader writes the node's metadata and index; with ``defer`` it
    calls no MPI: the result's ``"finish"`` (a ``NodeFinish``) completes the
    node file later and gives the index checksum."""
    if plan.assignment is None:
        offers = [{"codecs": [], "chunks": []}] * rank + [plan.offer]
        plan.assignment = assign_owners(offers)[rank]
    makedirs(layout.data_dir(vid))
    own = _owned(plan)
    index = _index_doc(layout, vid, rank, plan)
    if plan.node is not None:
        return _write_node_part(layout, vid, rank, plan, own, index, defer)
    written = _write_own_file(layout, vid, rank, plan, own, index) if own else 0
    stats = index["stats"] = _stats(plan, own, written)
    raw = seal(dict(index, leaves={n: e.to_json() for n, e in index["leaves"].items()}))
    atomic_write(layout.abs(layout.rel_index_file(vid, rank)), raw)
    _done(plan, index)
    return {"index_checksum": chunk_hash(raw), "host": os.uname().nodename,
            "logical_bytes": plan.stats["logical_bytes"], "stats": stats}


def _owned(plan: RankPlan) -> dict[str, list[int]]:
    """What this rank writes: per variable, its owned chunks in offer order."""
    own: dict[str, list[int]] = {}
    for pos, (_owner, var, _off, _st, _cfg, writes) in enumerate(plan.assignment):
        if writes:
            own.setdefault(var, []).append(pos)
    return own


def _stats(plan: RankPlan, own: dict, written: int) -> dict:
    return dict(plan.stats, written_bytes=written, written_chunks=sum(len(v) for v in own.values()))


def _done(plan: RankPlan, index: dict) -> None:
    plan.index = index          # the next version's dedup parent table
    plan.payload = []
    _release_gathered(plan)


def _index_doc(layout: RepoPaths, vid: str, rank: int, plan: RankPlan) -> dict:
    """This rank's index (without its data file's checksums): every chunk of
    every leaf as file, variable, offset, sizes, hash, codec."""
    files: dict[str, int] = {}
    codecs: dict[str, int] = {}
    codec_list: list[dict] = []

    def fi(rel):
        if rel not in files:
            files[rel] = len(files)
        return files[rel]

    def ci(cfg):
        k = codec_key(cfg)
        if k not in codecs:
            codecs[k] = len(codec_list)
            codec_list.append(cfg)
        return codecs[k]

    node = plan.node
    if node is None:
        def place(owner, var):
            return layout.rel_data_file(vid, owner), var
    else:
        def place(owner, var):
            return layout.rel_node_data_file(vid, node.nodes.node_of[owner]), node_var(owner, var)

    index = {"vlcc_index": INDEX_VERSION, "version": vid, "rank": rank,
             "files": None, "codecs": None, "leaves": {}}
    for lp in plan.leaves:
        leaf = lp.leaf
        chunks = []
        for (start, length), h, (kind, ref) in zip(lp.bounds, lp.hashes, lp.where):
            if kind == "ref":
                chunks.append(ChunkEntry(fi(ref.file), ref.var, ref.offset, ref.stored, ref.nbytes,
                                         h, ci(ref.codec)))
            else:
                owner, var, off, stored, cfg, _w = plan.assignment[ref]
                rel, name = place(owner, var)
                chunks.append(ChunkEntry(fi(rel), name, off, stored, length, h, ci(cfg)))
        is_pack = plan.packed is not None and leaf is plan.packed.pack
        index["leaves"][leaf.name] = IndexLeaf(int(leaf.data.size), plan.chunk_size, chunks,
                                               None if is_pack else _block(leaf, plan.digests),
                                               lp.tile)
    if plan.packed is not None and plan.packed.pack is not None:
        pk = plan.packed
        for leaf in pk.leaves:   # no chunks of their own: where in the pack they are
            block = _block(leaf, plan.digests)
            block["pack"] = {"leaf": pk.pack.name, "offset": pk.offsets[leaf.name]}
            index["leaves"][leaf.name] = IndexLeaf(int(leaf.data.size), plan.chunk_size, [], block)
    index["files"] = sorted(files, key=files.get)
    index["codecs"] = codec_list or [dict(RAW)]
    return index


def _var_buffers(plan: RankPlan, own: dict[str, list[int]]):
    """(variable, bytes to store, nbytes) per variable this rank writes, in
    offer order: the leaf's own buffer when every chunk of it is new and raw
    (no copy), else its chunks' stored bytes."""
    by_name = {lp.leaf.name: lp for lp in plan.leaves}
    for var, positions in own.items():
        parts = [plan.payload[p] for p in positions]
        lp = by_name.get(var)
        total = sum(int(p.size) for p in parts)
        if (lp is not None and total == lp.data.size and len(parts) == len(lp.bounds)
                and all(plan.offer["chunks"][p].nbytes == plan.offer["chunks"][p].stored
                        for p in positions)):
            buf = lp.data
        elif len(parts) == 1:
            buf = parts[0]
        elif any(is_lazy(p) for p in parts):
            buf = Chain(parts)      # copied into the write's bounce buffer
        else:
            buf = np.concatenate(parts)
        yield var, buf, total


def _write_own_file(layout: RepoPaths, vid: str, rank: int, plan: RankPlan, own: dict,
                    index: dict) -> int:
    """This rank's own BP5 file (a rank that writes alone): every variable it
    owns; records the file's metadata checksums and offsets in ``index``."""
    rel_bp = layout.rel_data_file(vid, rank)
    written = 0
    writer = None
    try:
        reserve = sum(int(plan.payload[p].size) for ps in own.values() for p in ps)
        writer = BlockWriter(layout.abs(rel_bp), reserve=reserve, nvars=len(own),
                             what=f"version {vid}")
        for var, buf, total in _var_buffers(plan, own):
            writer.put(var, buf)
            written += total
        writer.close()
        offsets, writer = writer.offsets, None
        fsync_tree(layout.abs(rel_bp))
        index["bp5"] = bp5_checksums(layout.abs(rel_bp))
        if offsets is not None:
            # readers map these bytes instead of asking ADIOS2 for a copy
            index["bp5_offsets"] = offsets
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
    return written


def _node_tmp(layout: RepoPaths, vid: str, node: int) -> str:
    """data.0 of a node file while its ranks write it (``.tmp-``: never read,
    removed by gc after a crash)."""
    return layout.abs(node_tmp_rel(vid, node))


def _write_node_part(layout: RepoPaths, vid: str, rank: int, plan: RankPlan, own: dict,
                     index: dict, defer: bool = False) -> dict:
    """Node files: write this rank's range of the node's data.0, then (node
    collective) the leader writes the node's BP5 metadata and the node
    index holding every rank's index. An error anywhere on the node is
    raised on every rank of the node, after the collective."""
    node = plan.node
    written = 0
    part = None
    err: BaseException | None = None
    offsets = None
    try:
        if node.is_leader and node.layout.variables:
            # the metadata depends only on the layout: written while the ranks write data
            offsets = write_metadata(layout.abs(layout.rel_node_data_file(vid, node.node)),
                                     _node_tmp(layout, vid, node.node), node.layout,
                                     f"version {vid}, node {node.node}")
        if own:
            bufs = list(_var_buffers(plan, own))
            written = sum(t for _v, _b, t in bufs)
            write_range(_node_tmp(layout, vid, node.node), node.layout.start[rank],
                        [b for _v, b, _t in bufs])
        index["stats"] = _stats(plan, own, written)
        part = dict(index, leaves={n: e.to_json() for n, e in index["leaves"].items()})
    except OSError as exc:
        err = storage_error(exc, f"rank {rank}: cannot write data of version {vid}")
    except BaseException as exc:   # noqa: BLE001 - raised after the node collective
        err = exc

    def local():
        if err is not None:
            raise err
        return part

    if defer:
        local()
        _done(plan, index)
        return {"node": node.node, "host": os.uname().nodename,
                "logical_bytes": plan.stats["logical_bytes"], "stats": index["stats"],
                "finish": NodeFinish(layout, vid, node, part, offsets)}
    checksum = gather_decide(node.comm, local,
                             lambda parts: _write_node_index(layout, vid, node, parts, offsets))
    _done(plan, index)
    return {"index_checksum": checksum, "node": node.node, "host": os.uname().nodename,
            "logical_bytes": plan.stats["logical_bytes"], "stats": index["stats"]}


def _write_node_index(layout: RepoPaths, vid: str, node: NodePlan, parts: list[dict],
                      offsets: dict | None) -> str:
    """The node leader, every rank's range being durable: the node file's
    data.0 into place and checked, then the node index. Returns the index's
    checksum."""
    k = node.node
    doc = {"vlcc_index": INDEX_VERSION, "version": vid, "node": k,
           "ranks": [int(p["rank"]) for p in parts],
           "blocks": {str(p["rank"]): {n: p[n] for n in ("files", "codecs", "leaves", "stats")}
                      for p in parts}}
    if node.layout.variables:
        rel_bp = layout.rel_node_data_file(vid, k)
        what = f"version {vid}, node {k}"
        try:
            place_data(layout.abs(rel_bp), _node_tmp(layout, vid, k), node.layout, offsets)
            fsync_tree(layout.abs(rel_bp))
        except OSError as exc:
            raise storage_error(exc, f"{what}: cannot write node data file {rel_bp}") from exc
        doc["bp5"] = bp5_checksums(layout.abs(rel_bp))
        doc["bp5_offsets"] = offsets
    raw = seal(doc)
    atomic_write(layout.abs(layout.rel_node_index_file(vid, k)), raw)
    return chunk_hash(raw)


def planned_table(layout: RepoPaths, vid: str, plan: RankPlan) -> ChunkTable:
    """The chunk table version ``vid`` will have once ``plan`` is written
    (the same entries ``write_rank`` records in its index): known as soon as
    the plan is agreed, so a version captured while ``vid`` is still being
    flushed dedups against it instead of writing its chunks again."""
    table = ChunkTable()
    node = plan.node
    for lp in plan.leaves:
        for (_start, length), h, (kind, ref) in zip(lp.bounds, lp.hashes, lp.where):
            if kind == "ref":
                table.add(ref)
            else:
                owner, var, off, stored, cfg, _w = plan.assignment[ref]
                if node is None:
                    rel = layout.rel_data_file(vid, owner)
                else:   # node files (3.4): the owner's node's file, the owner's variable
                    rel, var = layout.rel_node_data_file(vid, node.nodes.node_of[owner]), \
                        node_var(owner, var)
                table.add(StoredChunk(rel, var, off, stored, int(length), h, cfg))
    return table


def _block(leaf: Leaf, digests: dict) -> dict:
    """This rank's block of a leaf, as format 2 records it in the rank index."""
    b = {"shape": [int(x) for x in leaf.shape], "digest": digests[leaf.name]}
    if leaf.kind == Kind.DISTRIBUTED:
        b["offset"] = [int(x) for x in leaf.offset]
    return b


def replication(comm, plan: RankPlan) -> dict[str, bool]:
    """Collective: which leaves hold the same bytes and shape on every rank
    (such per-rank data restores on any rank count). Rank 0's (digest,
    shape) list is broadcast and each rank ORs in a bit per leaf that differs:
    O(leaves) per rank and O(log P) deep, instead of gathering every rank's
    digests on rank 0 (format 1)."""
    shapes = {lp.leaf.name: tuple(lp.leaf.shape) for lp in plan.leaves}
    if plan.packed is not None:
        shapes.update({l.name: tuple(l.shape) for l in plan.packed.leaves})
        if plan.packed.pack is not None:
            shapes.pop(plan.packed.pack.name, None)
    names = sorted(shapes)
    mine = [(plan.digests[n], shapes[n]) for n in names]
    ref = from_root(comm, lambda: mine)
    differ = any_bits(comm, lambda: sum(1 << i for i, (a, b) in enumerate(zip(mine, ref)) if a != b)
                      if len(ref) == len(mine) else (1 << len(names)) - 1)
    return {n: not (differ >> i) & 1 for i, n in enumerate(names)}


class RankWriter:
    """The per-rank write path of a Checkpointer: dedup state (the chunk
    table of the last version this rank wrote, the dirty tracker) and
    per-provider codecs.

    ``prepare`` is collective (one allgather of the offered chunk hashes);
    ``write`` is local; ``committed`` keeps the written index as the next
    version's dedup parent (no re-read from disk)."""

    def __init__(self, layout: RepoPaths, rank: int, chunk_size: int, *, size: int = 1,
                 dedup: bool = True, track_dirty: bool = False, coalesce_below: int = 0):
        self.layout, self.rank, self.size, self.chunk_size = layout, rank, size, int(chunk_size)
        self.coalesce_below = int(coalesce_below)
        self.dedup = bool(dedup)
        self.hasher = ChunkHasher(track=track_dirty)
        self.codecs: dict[str, Codec] = {}
        self._last: tuple[str, dict] | None = None
        # the newest version prepared here but maybe not written yet (async
        # without flusher collectives): its chunk table, for the next version
        self._inflight: tuple[str, ChunkTable] | None = None
        self._plan: RankPlan | None = None
        self._restored: tuple[str, list] | None = None   # (version, sub-tile StoredChunks)
        self._nodes: tuple | None = None     # (communicator, NodeMap, node communicator)
        self._node_files: bool | None = None

    def set_codec(self, name: str, compress) -> None:
        """Codec for provider ``name``: an id ("zstd", "blosc2", "raw"), a
        config dict, a Codec, or None/False for none."""
        if compress is None or compress is False:
            self.codecs.pop(name, None)
        else:
            self.codecs[name] = get_codec("zstd" if compress is True else compress)

    def forget(self, name: str) -> None:
        self.codecs.pop(name, None)
        self.hasher.forget(name)

    def restored_from(self, vid: str, subranges: list | None) -> None:
        """This rank was just restored from ``vid``; ``subranges`` are the
        parts of its stored tiled chunks that are whole pieces of this rank's
        blocks (restore/reader.py). While ``vid`` is the dedup parent they
        join its chunk table: unchanged data written again after an N→M
        restart references them instead of storing those pieces anew."""
        self._restored = (vid, list(subranges)) if subranges else None

    def _parent_table(self, parent: str | None, leaves: list[Leaf] = ()) -> ChunkTable:
        if not self.dedup or parent is None:
            return ChunkTable()
        inflight = self._inflight
        if inflight is not None and inflight[0] == parent:
            return inflight[1]     # (read only here: prepare_rank never adds to it)
        if self._last is not None and self._last[0] == parent:
            table = ChunkTable.from_indexes([self._last[1]])
        else:
            boxes = {l.name: (tuple(l.offset), tuple(l.shape)) for l in leaves
                     if l.kind == Kind.DISTRIBUTED and l.offset is not None}
            table = ChunkTable.from_indexes(load_parent_indexes(self.layout, parent, self.rank,
                                                                self.size, boxes))
        restored = self._restored
        if restored is not None and restored[0] == parent:
            for c in restored[1]:
                table.add(c)
        return table

    def prepare(self, comm, parent: str | None, leaves: list[Leaf], *, nodes: bool = False) -> RankPlan:
        """Collective: hash, look up, encode; agree on who writes shared chunks.
        ``nodes``: the write will be collective too (``write``), so the ranks
        of a node share one data file and one index (docs/format.md, 3.4)."""
        def local():
            self._plan = prepare_rank(self.rank, leaves, self.chunk_size,
                                      parent=self._parent_table(parent, leaves), codecs=self.codecs,
                                      hasher=self.hasher, coalesce_below=self.coalesce_below)
            return self._plan.offer if self.dedup else None
        offers = allgather(comm, local)
        if self.dedup:
            self._plan.assignment = assign_owners(offers)[self.rank]
        else:
            self._plan.assignment = place_own(self._plan.offer, self.rank)
        self._plan.replicated = replication(comm, self._plan)
        if nodes:
            if self._node_files is None:   # rank 0's setting, so all ranks agree
                self._node_files = bool(from_root(comm, node_files_enabled))
            if self._node_files:
                self._plan.node = self._node_plan(comm, self._plan)
        return self._plan

    def _node_plan(self, comm, plan: RankPlan) -> NodePlan:
        """Collective: this node's file layout from what each of its ranks
        writes (one allgather over the node). The node map and the node
        communicator are made once per communicator."""
        self.bind_nodes(comm)
        _c, nm, ncomm = self._nodes
        sizes: dict[str, int] = {}
        for _o, var, off, stored, _cfg, writes in plan.assignment:
            if writes:
                sizes[var] = max(sizes.get(var, 0), off + stored)
        mine = list(sizes.items())
        per_rank = allgather(ncomm, lambda: (self.rank, mine))
        return NodePlan(nm, ncomm, node_layout(sorted(per_rank)))

    def bind_nodes(self, comm, nm: NodeMap | None = None) -> None:
        """Collective over ``comm`` (on first use with it): the node map
        (``nm`` if known) and the node communicator of node files written
        over ``comm``. The flusher's are made when the Checkpointer opens, on
        the application's thread (comm/protocol.created)."""
        if self._nodes is None or self._nodes[0] is not comm:
            self.release()
            nm = nm or node_map(comm)
            self._nodes = (comm, nm, node_comm(comm, nm))

    def release(self) -> None:
        """Free the node communicator made for node files (at close, or when
        the writer is given another communicator)."""
        if self._nodes is not None and self._nodes[2] is not self._nodes[0]:
            release(self._nodes[2])
        self._nodes = None

    def write(self, vid: str) -> dict:
        plan, self._plan = self._plan, None
        if plan is None:
            raise StorageError("RankWriter.write called without prepare")
        res = write_rank(self.layout, vid, self.rank, plan)
        self._pending = (vid, plan.index)
        return res

    # -- async mode: plans leave with their version to the flusher thread ----------
    def detach_plan(self) -> None:
        """Forget the prepared plan here: the caller carries it (async flush)."""
        self._plan = None

    def prepared(self, vid: str, plan: "RankPlan") -> None:
        """``plan`` (agreed) will be written as ``vid`` by the flusher: the
        next version dedups against it even while it is in flight. Safe: a
        version commits only after its predecessors, and a failed flush
        abandons every version after it."""
        if self.dedup:
            self._inflight = (vid, planned_table(self.layout, vid, plan))

    def knows(self, vid: str | None) -> bool:
        """Is ``vid``'s chunk table at hand (written here, or prepared here
        and in flight)?"""
        return vid is not None and any(t is not None and t[0] == vid
                                       for t in (self._inflight, self._last))

    def note_written(self, vid: str, plan: "RankPlan") -> None:
        """Called by the flusher thread once ``vid`` is written: its index is the
        dedup parent table of later versions (a tuple swap, atomic under the GIL)."""
        self._last = (vid, plan.index)

    def last_written(self) -> str | None:
        last = self._last
        return last[0] if last is not None else None

    def committed(self, vid: str) -> None:
        pend = getattr(self, "_pending", None)
        if pend is not None and pend[0] == vid:
            self._last = pend
        self._pending = None

    def abort(self) -> None:
        self._plan = None
        self._pending = None
        self._inflight = None
        # the tracker's copy already moved on to the failed capture: its hashes
        # are still exact for those bytes, so nothing else to undo
