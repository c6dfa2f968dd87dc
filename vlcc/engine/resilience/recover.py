"""The collective recovery of a version kept on node-local tiers only, at
restore (docs/format.md, "Node-local redundancy"):

1. inventory: every node leader reports what its node's store holds of the
   version: the layout, the writer nodes whose files are all there (sizes),
   the parity/partner shares;
2. decide (the same on every rank, from the same inventory): a writer node
   whose files no node holds is *lost*; it is rebuilt when every stripe it is
   part of still has ``k`` shares; otherwise a clear error names the version
   and the missing nodes;
3. rebuild: a surviving node per lost node gathers ``k`` shares of each of
   its stripes, decodes, checks every rebuilt file against its xxh3-128
   from the layout and writes it to the persistent tier;
4. complete: every other writer node's files are copied to the persistent
   tier by a node holding them (each node its own part, in parallel), so
   that any reader rank (N→M, references between ranks) finds every file;
   rank 0 writes ``data/<V>/rebuilt.json`` (what was rebuilt, from what)."""

from __future__ import annotations

import json
import os
import time

import numpy as np

from ...comm.nodes import NodeMap
from ...comm.protocol import agree, allgather, exchange
from ...errors import CorruptionError, StorageError
from ...repo.fsutil import atomic_write, makedirs
from ...repo.nodelocal import NODELOCAL, REBUILT, complete_on, read_record, record_rel
from ...repo.paths import RepoPaths
from .codes import code_for, parse
from .protect import segment
from .store import NodeStore, copy_file, digest, write_file



def complete(paths: RepoPaths, manifest: dict) -> bool:
    """Is the version complete on the persistent tier (every rank's index there)?"""
    return complete_on(paths, manifest["id"], int(manifest["nranks"]), manifest)


def _inventory(nmap: NodeMap, store: NodeStore | None, vid: str):
    if not nmap.is_leader or store is None:
        return None
    doc = store.read_layout(vid)
    if doc is None:
        return None
    held = [w for w, nd in enumerate(doc["nodes"]) if store.has_files(nd["files"])]
    return {"layout": doc, "held": held,
            "shares": [[j, q, name] for (j, q), name in store.shares(vid).items()]}


def _decide(vid: str, inv: list, where: str, written: list[str]) -> dict:
    docs = [i["layout"] for i in inv if i is not None]
    if not docs:
        raise StorageError(f"version {vid}: its data were kept on node-local tiers only and no "
                           f"node of this job holds them (looked in {where}); missing nodes: "
                           f"{', '.join(written) or 'unknown'}; no persistent copy of the "
                           f"version exists")
    doc = docs[0]
    cur_node = {}                        # rank -> its current node index, for leaders that answered
    holder: dict[int, int] = {}          # writer node -> rank of a leader holding its files
    share_at: dict[tuple[int, int], tuple[int, str]] = {}   # (stripe, q) -> (rank, file)
    for rank, i in enumerate(inv):
        if i is None:
            continue
        cur_node[rank] = len(cur_node)
        for w in i["held"]:
            holder.setdefault(w, rank)
        for j, q, name in i["shares"]:
            share_at.setdefault((j, q), (rank, name))
    nodes = doc["nodes"]
    lost = [w for w in range(len(nodes)) if w not in holder]
    rebuild: dict[int, dict] = {}
    beyond = []
    leaders = sorted(cur_node)
    for t, w in enumerate(lost):
        plan = {"by": leaders[t % len(leaders)], "stripes": []}
        for j, st in enumerate(doc["stripes"]):
            mine = [i for i, (node, _s) in enumerate(st["data"]) if node == w]
            if not mine:
                continue
            k = len(st["data"])
            avail = [("d", i, holder[node]) for i, (node, _s) in enumerate(st["data"])
                     if node in holder]
            avail += [("p", k + q, share_at[(j, q)]) for q in range(len(st["parity"]))
                      if (j, q) in share_at]
            if len(avail) < k:
                beyond.append(w)
                break
            plan["stripes"].append({"stripe": j, "seg": st["data"][mine[0]][1], "share": mine[0],
                                    "use": avail[:k]})
        rebuild[w] = plan
    if beyond:
        labels = [nodes[w]["label"] for w in lost]
        labels = [nodes[w]["label"] for w in lost]
        per = "group" if doc["scheme"] in ("xor",) or doc["scheme"].startswith("rs") else "job"
        raise StorageError(
            f"version {vid}: the node-local data of node(s) {', '.join(labels)} are lost and "
            f"redundancy {doc['scheme']!r} cannot rebuild them (it tolerates "
            f"{parse(doc['scheme'], doc.get('group_size') or None).tolerates} lost node(s) per "
            f"{per}); missing nodes: {', '.join(labels)}; no persistent copy of the version exists")
    return {"layout": doc, "holder": holder, "lost": lost, "rebuild": rebuild}


def recover(comm, nmap: NodeMap, store: NodeStore | None, paths: RepoPaths, manifest: dict,
            where: str) -> dict:
    """Collective: make version ``manifest`` complete on the persistent tier from
    the node-local stores (rebuilding lost nodes). Returns the rebuilt.json record."""
    vid = manifest["id"]
    t0 = time.perf_counter()
    inv = allgather(comm, lambda: _inventory(nmap, store, vid))
    mark = read_record(paths, vid, NODELOCAL) or {}
    d = _decide(vid, inv, where, [str(n.get("label")) for n in mark.get("nodes", [])])
    doc, rebuild = d["layout"], d["rebuild"]
    scheme = parse(doc["scheme"], doc.get("group_size") or None)

    # ranks that send shares, per lost node: in stripe order, per destination
    def shares_out():
        out: dict = {}
        for w, plan in rebuild.items():
            for sp in plan["stripes"]:
                st = doc["stripes"][sp["stripe"]]
                for kind, i, src in sp["use"]:
                    if kind == "d" and src == comm.rank:
                        node, seg = st["data"][i]
                        out.setdefault(plan["by"], []).append(
                            segment(store, doc, node, seg, st["length"]))
                    elif kind == "p" and src[0] == comm.rank:
                        out.setdefault(plan["by"], []).append(store.read_share(vid, src[1]))
        return out
    got = exchange(comm, shares_out) if rebuild else {}

    def rebuild_and_complete():
        queues = {src: list(b) for src, b in got.items()}
        lost_done = None
        for w, plan in rebuild.items():
            if plan["by"] != comm.rank:
                continue
            nd = doc["nodes"][w]
            blob = np.zeros(doc["seglen"][w] * max(1, doc["segments"][w]), np.uint8)
            for sp in plan["stripes"]:
                st = doc["stripes"][sp["stripe"]]
                shares = {}
                for kind, i, src in sp["use"]:
                    rank = src if kind == "d" else src[0]
                    buf = queues[rank].pop(0)
                    if kind == "p" and digest(buf) != src[1].split("-")[3][:-4]:
                        raise CorruptionError(f"version {vid}: share {src[1]} of node-local "
                                              f"redundancy on rank {rank} is damaged")
                    shares[i] = buf
                k = len(st["data"])
                data = code_for(scheme, k, len(st["parity"])).decode(shares)
                n = doc["seglen"][w]
                blob[sp["seg"] * n:(sp["seg"] + 1) * n] = data[sp["share"]][:n]
            pos = 0
            for rel, size, dg in nd["files"]:
                part = blob[pos:pos + size]
                pos += size
                if digest(part) != dg:
                    raise CorruptionError(f"version {vid}: rebuilt file {rel} of node "
                                          f"{nd['label']} does not match its checksum")
                write_file(paths.abs(rel), part)
            lost_done = time.perf_counter() - t0
        for w, rank in d["holder"].items():
            if rank != comm.rank:
                continue
            for rel, _size, _dg in doc["nodes"][w]["files"]:
                dst = paths.abs(rel)
                if not os.path.exists(dst):
                    copy_file(store.layout.abs(rel), dst)
        return lost_done
    rebuilt_at = [t for t in allgather(comm, rebuild_and_complete) if t is not None]
    rec = {"version": vid, "scheme": doc["scheme"],
           "rebuilt_nodes": [doc["nodes"][w]["label"] for w in d["lost"]],
           "rebuilt_by": {doc["nodes"][w]["label"]: p["by"] for w, p in rebuild.items()},
           "nodes": [nd["label"] for nd in doc["nodes"]], "time": time.time(),
           # until the lost nodes' files were rebuilt and written; the whole recovery
           "rebuild_seconds": max(rebuilt_at, default=0.0), "seconds": time.perf_counter() - t0}

    def record():
        if comm.rank == 0:
            makedirs(paths.data_dir(vid))
            atomic_write(paths.abs(record_rel(vid, REBUILT)), json.dumps(rec, sort_keys=True).encode())
    agree(comm, record)
    return rec


__all__ = ["recover", "complete"]
