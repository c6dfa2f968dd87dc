"""Redundancy schemes of the node-local tier and the erasure codes behind them.

A *stripe* is ``k`` data segments from ``k`` distinct nodes plus ``m``
parity segments stored on ``m`` other nodes; any ``k`` of its ``k + m``
shares give back the data. The schemes differ in how stripes are laid out:

- ``partner``: stripe ``i`` = node ``i``'s whole file set (k=1) copied to
  node ``i+1`` (m=1, a copy).
- ``xor`` (SCR's XOR set): nodes form groups of ``group_size``; in a group of
  ``g`` nodes, stripe ``j`` has its parity on node ``j`` and one segment of
  each of the other ``g-1`` nodes (k=g-1, m=1): every node's data are cut into
  ``g-1`` segments and it stores ``1/(g-1)`` of its data size in parity.
- ``rs:K+M``: groups of ``K+M`` nodes; stripe ``j`` has parity on nodes
  ``j..j+M-1`` and data from the other ``K`` (zfec's Reed–Solomon): any
  ``M`` lost nodes of a group are rebuilt; each node stores ``M/K`` of its
  data size in parity.

Nodes left over when the node count is not a multiple of the group size
join the last group (it gets a larger ``k``; a group of a single node cannot
protect anything, so fewer nodes than ``m + 1`` is an error)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ...errors import ArgumentError

DEFAULT_GROUP_SIZE = 8     # SCR's default XOR set size


@dataclass(frozen=True)
class Scheme:
    kind: str                  # "none", "partner", "xor", "rs"
    k: int = 0                 # rs: data nodes per group
    m: int = 0                 # parity shares per stripe
    group_size: int = 0        # nodes per group (xor: group_size, rs: K+M)

    @property
    def spec(self) -> str:
        return f"rs:{self.k}+{self.m}" if self.kind == "rs" else self.kind

    @property
    def tolerates(self) -> int:
        """Nodes per group that may be lost."""
        return 0 if self.kind == "none" else (self.m or 1)


def parse(spec: str | None, group_size: int | None = None) -> Scheme:
    """``"none"`` / ``"partner"`` / ``"xor"`` / ``"rs:K+M"`` → Scheme."""
    s = "none" if spec in (None, "", False) else str(spec).strip().lower()
    if group_size is not None:
        try:
            group_size = int(group_size)
        except (TypeError, ValueError):
            group_size = 0
        if group_size < 2:
            raise ArgumentError(f"group_size must be an integer of at least 2 nodes, got "
                                f"{group_size!r}")
    if s in ("none", "partner"):
        return Scheme(s, m=0 if s == "none" else 1)
    if s == "xor":
        return Scheme("xor", m=1, group_size=int(group_size or DEFAULT_GROUP_SIZE))
    m = re.fullmatch(r"rs:(\d+)\+(\d+)", s)
    if m and int(m.group(1)) >= 1 and int(m.group(2)) >= 1:
        k, mm = int(m.group(1)), int(m.group(2))
        if k + mm > 256:
            raise ArgumentError(f"redundancy {spec!r}: K+M must be at most 256 (zfec)")
        return Scheme("rs", k=k, m=mm, group_size=k + mm)
    raise ArgumentError(f"unknown redundancy {spec!r}: use 'none', 'partner', 'xor' or 'rs:K+M' "
                        f"(e.g. 'rs:4+2')")


@dataclass(frozen=True)
class Stripe:
    data: tuple[tuple[int, int], ...]   # (node, segment index of that node), share i < k
    parity: tuple[int, ...]             # node of parity share q (share k + q)

    @property
    def k(self) -> int:
        return len(self.data)

    @property
    def m(self) -> int:
        return len(self.parity)


def groups(scheme: Scheme, nnodes: int) -> list[list[int]]:
    if scheme.kind in ("none", "partner"):
        return [list(range(nnodes))]
    size = scheme.group_size
    n = max(1, nnodes // size)
    out = [list(range(i * size, (i + 1) * size)) for i in range(n)]
    out[-1] = list(range((n - 1) * size, nnodes))      # the remainder joins the last group
    return out


def stripes(scheme: Scheme, nnodes: int) -> list[Stripe]:
    """The stripes of ``nnodes`` nodes (indices 0..nnodes-1) under ``scheme``."""
    if scheme.kind == "none":
        return []
    if nnodes < scheme.tolerates + 1:
        raise ArgumentError(f"redundancy {scheme.spec!r} needs at least {scheme.tolerates + 1} "
                            f"nodes, this job has {nnodes} (VLCC_NODE_ID simulates nodes on one "
                            f"machine)")
    if scheme.kind == "partner":
        return [Stripe(((i, 0),), ((i + 1) % nnodes,)) for i in range(nnodes)]
    out = []
    for g in groups(scheme, nnodes):
        n, m = len(g), scheme.m
        seg = {node: 0 for node in g}
        for j in range(n):
            par = tuple(g[(j + q) % n] for q in range(m))
            data = []
            for t in range(m, n):
                node = g[(j + t) % n]
                data.append((node, seg[node]))
                seg[node] += 1
            out.append(Stripe(tuple(data), par))
    return out


def segment_counts(sts: list[Stripe], nnodes: int) -> list[int]:
    """Number of segments each node's data are cut into."""
    n = [0] * nnodes
    for st in sts:
        for node, _ in st.data:
            n[node] += 1
    return n


# -- codes -----------------------------------------------------------------------------------
class Code:
    """``encode(k blocks) -> m parity blocks``; ``decode({share: block}) -> k data blocks``
    from any ``k`` shares (share ``i < k``: data block i; ``k + q``: parity q). Blocks
    are equal-length uint8 arrays."""

    def __init__(self, k: int, m: int):
        self.k, self.m = k, m

    def encode(self, blocks: list[np.ndarray], consume: bool = False) -> list[np.ndarray]:
        """``consume``: the caller gives the blocks up (they may be overwritten)."""
        raise NotImplementedError

    def decode(self, shares: dict[int, np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def _check(self, shares: dict[int, np.ndarray]) -> None:
        if len(shares) < self.k:
            raise ValueError(f"{type(self).__name__}: {len(shares)} shares, {self.k} needed")


class CopyCode(Code):
    """The partner copy: one data block, one identical parity block."""

    def encode(self, blocks, consume=False):
        return [blocks[0]]

    def decode(self, shares):
        self._check(shares)
        return [shares.get(0, shares.get(1))]


class XorCode(Code):
    """One parity block, the XOR of the ``k`` data blocks (numpy, in place).
    ``consume=True``: the blocks are the caller's to overwrite (received
    buffers): the parity is accumulated into the first one, no copy."""

    def encode(self, blocks, consume: bool = False):
        par = blocks[0] if consume else blocks[0].copy()
        for b in blocks[1:]:
            np.bitwise_xor(par, b, out=par)
        return [par]

    def decode(self, shares):
        self._check(shares)
        missing = [i for i in range(self.k) if i not in shares]
        if not missing:
            return [shares[i] for i in range(self.k)]
        rest = [shares[i] for i in range(self.k + 1) if i in shares]
        got = XorCode(len(rest), 1).encode(rest)[0]     # the one missing block
        return [shares[i] if i in shares else got for i in range(self.k)]


class ReedSolomonCode(Code):
    """zfec's systematic Reed–Solomon code (Vandermonde over GF(2^8))."""

    def __init__(self, k: int, m: int):
        super().__init__(k, m)
        import zfec      # the `resilience` extra
        self._enc = zfec.Encoder(k, k + m)
        self._dec = zfec.Decoder(k, k + m)

    def encode(self, blocks, consume=False):
        out = self._enc.encode(tuple(blocks), tuple(range(self.k, self.k + self.m)))
        return [np.frombuffer(b, np.uint8) for b in out]

    def decode(self, shares):
        self._check(shares)
        if all(i in shares for i in range(self.k)):
            return [shares[i] for i in range(self.k)]
        nums = sorted(shares)[:self.k]
        out = self._dec.decode(tuple(shares[i] for i in nums), tuple(nums))
        return [np.frombuffer(b, np.uint8) for b in out]


def code_for(scheme: Scheme, k: int, m: int) -> Code:
    if scheme.kind == "partner":
        return CopyCode(1, 1)
    if scheme.kind == "xor":
        return XorCode(k, 1)
    return ReedSolomonCode(k, m)


__all__ = ["Scheme", "Stripe", "parse", "groups", "stripes", "segment_counts", "Code", "CopyCode",
           "XorCode", "ReedSolomonCode", "code_for", "DEFAULT_GROUP_SIZE"]
