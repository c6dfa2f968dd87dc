"""Node files (docs/format.md, 3.4): the ranks of one node share one BP5
file per version instead of one each.

Every rank knows, after the dedup agreement, how many bytes each rank of its
node writes into which variables, so all compute the same layout
(``node_layout``): rank after rank, each rank's variables back to back, then
a ``.pad`` variable up to the next ALIGN boundary. Each rank writes its own
range of data.0 (``write_range``: O_DIRECT from its buffers, in parallel with
the others, no bytes shipped to a leader); the node's leader meanwhile has
ADIOS2 write the metadata of those variables (``write_metadata``: the
serial ADIOS2 with MinDeferredSize 1 lays the variables out in put order,
which is the layout) and, once every range is durable, moves data.0 into
place and checks the layout through ADIOS2's reader (``place_data``).

Measured alternative: shipping every rank's bytes to the leader costs one
more copy of the node's data through MPI and the leader's memory, and one
writer per node instead of all (benchmarks/bench_files.py)."""

from __future__ import annotations

import mmap
from dataclasses import dataclass, field

import numpy as np

from .bp5 import BlockWriter, place_node_data
from .direct import ALIGN, write_at

PAD = ".pad"


def node_var(rank: int, var: str) -> str:
    """The variable of rank ``rank``'s leaf ``var`` in a node file."""
    return f"r{rank}/{var}"


@dataclass
class NodeLayout:
    variables: list = field(default_factory=list)   # (name, nbytes) in put order, pads included
    start: dict = field(default_factory=dict)       # rank -> first byte of its range in data.0

    @property
    def nbytes(self) -> int:
        return sum(n for _v, n in self.variables)

    def range_of(self, rank: int) -> tuple[int, int] | None:
        """(start, nbytes) of ``rank``'s range of data.0 (its pad included), or
        None when the rank writes nothing."""
        start = self.start.get(rank)
        if start is None:
            return None
        after = [s for s in self.start.values() if s > start]
        return start, (min(after) if after else self.nbytes) - start


def node_tmp_rel(vid: str, node: int) -> str:
    """data.0 of node file ``node`` of ``vid`` while its ranks write (or copy)
    their ranges (``.tmp-``: never read, removed by gc after a crash)."""
    return f"data/{vid}/.tmp-n{node}.data.0"


def node_layout(per_rank: list[tuple[int, list[tuple[str, int]]]]) -> NodeLayout:
    """The layout of a node file from what each rank of the node writes:
    ``per_rank`` lists (rank, [(variable, nbytes), ...]) in rank order."""
    out = NodeLayout()
    pos = 0
    for rank, items in per_rank:
        items = [(v, int(n)) for v, n in items if n > 0]
        if not items:
            continue
        out.start[rank] = pos
        for var, n in items:
            out.variables.append((node_var(rank, var), n))
            pos += n
        pad = -pos % ALIGN
        if pad:       # the next rank's range starts block-aligned (O_DIRECT)
            out.variables.append((node_var(rank, PAD), pad))
            pos += pad
    return out


def write_range(path: str, start: int, segments: list) -> int:
    """This rank's range of the node's data.0 (written as ``path``), durable."""
    return write_at(path, start, segments, sync=True)


def write_metadata(path: str, data_file: str, layout: NodeLayout, what: str) -> dict[str, int]:
    """The node leader, while the ranks write their ranges into ``data_file``
    (the metadata depends only on the layout): the BP5 file ``path`` with
    ADIOS2's metadata for ``layout``; its data.0 comes with ``place_data``.
    Returns the offset of each variable."""
    n = max(size for _v, size in layout.variables)
    dummy = np.frombuffer(mmap.mmap(-1, n), np.uint8)   # described, never read: data.0 is /dev/null
    w = BlockWriter(path, reserve=0, nvars=len(layout.variables), what=what, min_deferred=1,
                    data_file=data_file)
    try:
        for name, size in layout.variables:
            w.put(name, dummy[:size])
        w.close()
    finally:
        w.close()
    return w.offsets


def place_data(path: str, data_file: str, layout: NodeLayout, offsets: dict[str, int]) -> None:
    """The node leader, once every rank's range of ``data_file`` is durable:
    it becomes the node file's data.0, checked against ADIOS2's metadata."""
    place_node_data(path, data_file, offsets, dict(layout.variables))
