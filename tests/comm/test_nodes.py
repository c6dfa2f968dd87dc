"""Grouping ranks by node (vlcc/comm/nodes.py): the real shared-memory split
and the VLCC_NODE_ID simulation that tests of node-level features use."""

from __future__ import annotations

import os

import pytest

from vlcc.comm.nodes import NODE_ENV, node_map
from vlcc.comm.serial import SerialComm
from vlcc.errors import ArgumentError


@pytest.fixture
def node_env():
    old = os.environ.pop(NODE_ENV, None)
    yield os.environ
    os.environ.pop(NODE_ENV, None)
    if old is not None:
        os.environ[NODE_ENV] = old


def test_serial_one_node(node_env):
    m = node_map(SerialComm())
    assert (m.nnodes, m.node, m.is_leader, m.local_rank, m.simulated) == (1, 0, True, 0, False)
    assert m.local_dir("base") == "base"


def test_serial_simulated(node_env):
    node_env[NODE_ENV] = "7"
    m = node_map(SerialComm())
    assert m.simulated and m.labels == ("7",)
    assert m.local_dir("base") == os.path.join("base", "node-7")


def test_malformed_id(node_env):
    node_env[NODE_ENV] = "seven"
    with pytest.raises(ArgumentError, match="VLCC_NODE_ID='seven' on rank 0"):
        node_map(SerialComm())


@pytest.mark.mpi
def test_real_nodes_one_machine(comm, node_env):
    m = node_map(comm)
    # every rank of this test runs on this one machine: one shared-memory node
    assert m.nnodes == 1 and m.node_of == (0,) * comm.size
    assert m.is_leader == (comm.rank == 0)


@pytest.mark.mpi
def test_simulated_nodes(comm, node_env):
    node_env[NODE_ENV] = str(comm.rank // 2 + 10)
    m = node_map(comm)
    expect_nodes = (comm.size + 1) // 2
    assert m.nnodes == expect_nodes
    assert m.node == comm.rank // 2 and m.label == str(comm.rank // 2 + 10)
    assert m.leader(m.node) == 2 * m.node
    assert m.local_rank == comm.rank % 2
    assert sum(len(m.ranks_on(n)) for n in range(m.nnodes)) == comm.size


@pytest.mark.mpi(min_size=2)
def test_partly_set_fails_everywhere(comm, node_env):
    if comm.rank == 0:
        node_env[NODE_ENV] = "0"
    with pytest.raises(ArgumentError, match="set on some ranks"):
        node_map(comm)
