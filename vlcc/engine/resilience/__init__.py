"""Redundancy of the node-local tier (docs/format.md, 10.1 "Node-local redundancy"):
a version's files on one node are protected by a full copy on the next node
(``partner``), XOR parity over a group of nodes (``xor``) or Reed–Solomon
parity (``rs:K+M``, zfec), so a restart rebuilds a lost node's files from
the survivors.

- ``codes``:   the erasure codes (copy, XOR, Reed–Solomon) and the stripe
               layout that spreads data segments and parity over a group.
- ``store``:   a node's directory of one repository (survives the process).
- ``protect``: the collective encoding after the ranks wrote their files.
- ``recover``: the collective rebuild and completion at restore."""
