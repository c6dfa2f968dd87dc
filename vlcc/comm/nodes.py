"""Which ranks share a node (collective, once per Checkpointer).

Node-level concerns (redundancy of the node-local tier across nodes, one data
file per node instead of per rank) need the same answer on every rank: which
node each rank is on, and which rank leads each node. On a cluster the node is
MPI's shared-memory domain (``Split_type(COMM_TYPE_SHARED)``). On one machine
tests simulate several nodes with ``VLCC_NODE_ID`` (an integer per rank, set
in the launcher's environment); the node-local directory of a simulated node
is then ``$VLCC_LOCAL_DIR/node-<id>``.

Nodes are numbered 0..nnodes-1 in the order of their lowest rank, so the
numbering is the same on every rank and stable for a given launch layout.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from .. import settings
from ..errors import ArgumentError
from .protocol import allgather, created

NODE_ENV = "VLCC_NODE_ID"


@dataclass(frozen=True)
class NodeMap:
    """The node of every rank of a communicator (the same object on all ranks)."""
    rank: int
    node_of: tuple[int, ...]      # node index of each rank
    labels: tuple[str, ...]       # per node index: the VLCC_NODE_ID value or the host name
    simulated: bool               # True when VLCC_NODE_ID defined the nodes

    @property
    def nnodes(self) -> int:
        return len(self.labels)

    @property
    def node(self) -> int:
        """This rank's node index."""
        return self.node_of[self.rank]

    @property
    def label(self) -> str:
        return self.labels[self.node]

    def ranks_on(self, node: int) -> list[int]:
        return [r for r, n in enumerate(self.node_of) if n == node]

    def leader(self, node: int) -> int:
        """The lowest rank of ``node`` (the one that writes for the node)."""
        return self.ranks_on(node)[0]

    @property
    def is_leader(self) -> bool:
        return self.leader(self.node) == self.rank

    @property
    def local_rank(self) -> int:
        """Position of this rank among the ranks of its node."""
        return self.ranks_on(self.node).index(self.rank)

    def local_dir(self, base: str) -> str:
        """The node-local directory of this rank's node under ``base``: the
        per-node subdirectory ``node-<id>`` where nodes are simulated, ``base``
        itself on a real node (each node has its own ``base``)."""
        return os.path.join(base, f"node-{self.label}") if self.simulated else base


def _shared_memory_key(comm) -> str:
    """Collective on every rank (whatever its VLCC_NODE_ID): the host name and
    the lowest rank of this rank's shared-memory domain (host names alone may
    repeat across the nodes of containers)."""
    split = getattr(comm, "Split_type", None)
    if split is None:          # serial stand-in, torch adapter: the host is the node
        return socket.gethostname()
    from .._mpi import load
    mpi = load()
    created("Split_type")
    shm = split(mpi.COMM_TYPE_SHARED)
    try:
        # (an allgather: mpi4py's pickled allreduce would Dup ``shm`` first)
        first = min(shm.allgather(comm.rank))
    finally:
        shm.Free()
    return f"{socket.gethostname()}#{first}"


def _own_key(comm, shm_key: str) -> tuple[bool, str]:
    raw = settings.get(NODE_ENV)
    if raw is not None and raw.strip() != "":
        try:
            return True, str(int(raw.strip()))
        except ValueError:
            raise ArgumentError(f"{NODE_ENV}={raw!r} on rank {comm.rank}: expected an integer node id") from None
    return False, shm_key


def node_comm(comm, nm: NodeMap):
    """Collective over ``comm``: the communicator of this rank's node (an MPI
    Split by node, ranks in ``comm``'s order), or ``comm`` itself where it has
    one rank or cannot split. Free it with ``protocol.release`` unless it is
    ``comm``."""
    split = getattr(comm, "Split", None)
    if split is None or comm.size <= 1:
        return comm
    created("Split")
    return split(nm.node, comm.rank)


def node_map(comm) -> NodeMap:
    """Collective over ``comm``: group its ranks by node. Raises on every rank
    when ``VLCC_NODE_ID`` is malformed, or set on some ranks and not others."""
    shm_key = _shared_memory_key(comm)
    keys = allgather(comm, lambda: _own_key(comm, shm_key))
    simulated = {s for s, _ in keys}
    if len(simulated) > 1:
        missing = [r for r, (s, _) in enumerate(keys) if not s]
        raise ArgumentError(f"{NODE_ENV} is set on some ranks and not on ranks {missing[:8]}: "
                            f"set it on every rank or on none")
    labels: list[str] = []
    node_of: list[int] = []
    for _, key in keys:
        if key not in labels:
            labels.append(key)
        node_of.append(labels.index(key))
    sim = simulated == {True}
    if not sim:   # real nodes: label them by host name (without the domain's first rank)
        labels = [lab.split("#")[0] for lab in labels]
    return NodeMap(comm.rank, tuple(node_of), tuple(labels), sim)
