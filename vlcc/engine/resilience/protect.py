"""The collective encoding of one version's node-local files (the flusher
thread, or the application's thread when MPI is below MPI_THREAD_MULTIPLE;
after every rank wrote its files into its node's store, before the commit): every rank describes its files (size, xxh3-128); the node leaders
cut their node's files into segments, send each to its stripe's encoder (the
first parity node), which encodes and keeps share 0 and sends shares 1..m-1
on; the leaders hash their files as they read them (xxh3-128, into the
layout: the rebuilt bytes are checked against it); every leader writes the
version's ``layout.json``.

Every rank enters every call (comm/protocol.py): non-leaders send nothing."""

from __future__ import annotations

import time

import numpy as np

from ...comm.nodes import NodeMap
from ...comm.protocol import agree, allgather, exchange_planned
from .codes import Scheme, code_for, segment_counts, stripes
from .store import NodeStore

# Seconds per phase of this rank's last ``protect`` (benchmarks/bench_redundancy.py
# prints them): describe (file tables and digests, allgather), read (the leader
# maps its node's segments), send (segments to the encoders), encode, forward
# (rs: parity shares 2..m to their nodes), write (shares and layout, durable,
# agreed). Wall time on this rank, waits for others included.
LAST: dict[str, float] = {}


class _Clock:
    def __init__(self):
        self.t = time.perf_counter()
        self.acc: dict[str, float] = {}

    def __call__(self, phase: str) -> None:
        now = time.perf_counter()
        self.acc[phase] = self.acc.get(phase, 0.0) + now - self.t
        self.t = now


def plan(scheme: Scheme, nmap: NodeMap, tables: list[list]) -> dict:
    """The layout document of a version from every rank's file table (index = rank):
    nodes (label, ranks, files), stripes, segment length per node."""
    nodes = []
    for n in range(nmap.nnodes):
        files = [f for r in nmap.ranks_on(n) for f in tables[r]]
        nodes.append({"label": nmap.labels[n], "ranks": nmap.ranks_on(n), "files": files,
                      "nbytes": sum(f[1] for f in files)})
    sts = stripes(scheme, nmap.nnodes)
    nseg = segment_counts(sts, nmap.nnodes)
    seglen = [-(-nd["nbytes"] // max(1, ns)) for nd, ns in zip(nodes, nseg)]
    return {"vlcc_redundancy": 1, "scheme": scheme.spec, "k": scheme.k, "m": scheme.m,
            "group_size": scheme.group_size, "nodes": nodes, "segments": nseg, "seglen": seglen,
            "stripes": [{"data": [list(d) for d in st.data], "parity": list(st.parity),
                         "length": max([seglen[n] for n, _ in st.data] + [0])} for st in sts]}


def segment(store: NodeStore, doc: dict, node: int, seg: int, length: int) -> np.ndarray:
    """Segment ``seg`` of ``node``'s files (read from ``store``), zero-padded to
    ``length`` (read-only: a view of a mapping where it can be)."""
    n = doc["seglen"][node]
    return store.read_range(doc["nodes"][node]["files"], seg * n, n, size=length)


def protect(comm, nmap: NodeMap, store: NodeStore, vid: str, scheme: Scheme,
            own: list[str] | Exception, also=None, defer: bool = False):
    """Collective: encode version ``vid``'s node-local files under ``scheme``.
    ``own``: this rank's repository-relative files in ``store`` (or the error
    its write failed with: raised on every rank). ``also(doc)``: more work
    of this rank agreed with the last step (e.g. rank 0's nodelocal.json).
    Returns ``(layout document, None)``; with ``defer`` ``(document,
    write)``: the last step (write the shares and the layout, raise an
    error of an earlier step) is the caller's to run inside its next
    collective, which must raise it on every rank (the commit's gather).
    Collectives: one allgather (describe), then point-to-point only."""
    def describe():
        if isinstance(own, BaseException):
            raise own
        # hashed now, through a mapping (xxh3 runs at memory speed): the
        # digests travel with this allgather instead of a collective of their own
        return store.describe(own, hashed=scheme.kind != "none")
    t0 = time.perf_counter()
    clock = _Clock()
    tables = allgather(comm, describe)
    clock("describe")
    doc = plan(scheme, nmap, tables)
    doc["version"] = vid
    sts = doc["stripes"]
    leader = {n: nmap.leader(n) for n in range(nmap.nnodes)}
    me = nmap.node if nmap.is_leader else None

    # every message's size is known from the layout: no collective to agree on them
    data_sizes: dict = {}
    for st in sts:
        for node, _seg in st["data"]:
            data_sizes.setdefault((leader[node], leader[st["parity"][0]]), []).append(st["length"])
    fwd_sizes: dict = {}
    for st in sts:
        for node in st["parity"][1:]:
            fwd_sizes.setdefault((leader[st["parity"][0]], leader[node]), []).append(st["length"])

    def data_out():
        out: dict = {}
        if me is None:
            return out
        for st in sts:
            for node, seg in st["data"]:
                if node == me:
                    out.setdefault(leader[st["parity"][0]], []).append(
                        segment(store, doc, node, seg, st["length"]))
        return out
    # (an error here is carried into the last step: every message is sent anyway)
    got, err = exchange_planned(comm, data_out, data_sizes, clock) if sts else ({}, None)
    # the shares of every stripe this node encodes, in stripe order
    queues = {src: list(bufs) for src, bufs in got.items()}
    mine: list[tuple[int, int, np.ndarray]] = []      # (stripe, q, share) kept here

    def encode_out():
        out: dict = {}
        if err is not None:
            raise err           # (zeros are sent instead)
        if me is None:
            return out
        for j, st in enumerate(sts):
            if st["parity"][0] != me:
                continue
            blocks = [queues[leader[node]].pop(0) for node, _ in st["data"]]
            # the received segments are ours: xor accumulates into the first
            shares = code_for(scheme, len(blocks), len(st["parity"])).encode(blocks, consume=True)
            clock("encode")
            for q, (node, share) in enumerate(zip(st["parity"], shares)):
                if node == me:
                    mine.append((j, q, share))
                else:
                    out.setdefault(leader[node], []).append(share)
        return out
    # shares 1..m-1 go on to their nodes (rs only: with m = 1 nothing is sent)
    if scheme.m > 1:
        more, err2 = exchange_planned(comm, encode_out, fwd_sizes)
    else:
        try:
            more, err2 = encode_out(), None
        except Exception as exc:   # noqa: BLE001 - carried into the last step
            more, err2 = {}, exc
    err = err or err2
    clock("forward")
    if me is not None and err is None:
        queues = {src: list(bufs) for src, bufs in more.items()}
        for j, st in enumerate(sts):
            for q, node in enumerate(st["parity"]):
                if node == me and q > 0:
                    mine.append((j, q, queues[leader[st["parity"][0]]].pop(0)))
    doc["encode_seconds"] = time.perf_counter() - t0

    def write():
        if err is not None:
            raise err
        if me is not None:
            for j, q, share in mine:
                store.write_share(vid, j, q, share)
            store.write_layout(vid, doc)
            store.fsync(vid)
        if also is not None:
            also(doc)
        clock("write")
        LAST.clear()
        LAST.update(clock.acc)
    if defer:
        return doc, write
    agree(comm, write)
    return doc, None


__all__ = ["plan", "protect", "segment"]
