"""Replicated training state (DDP) captured once, not once per rank.

Under DDP every rank holds the same parameters and optimizer state. Storing
them per rank and letting cross-rank dedup drop the copies (the default)
still makes every rank copy and hash all of it at every save: with N ranks
sharing the cores of a node, N times the CPU one copy needs. With
``replicated=True`` each tensor is *owned* by one rank (whole tensors,
balanced by bytes, the same assignment on every rank); the owner registers
it as a distributed array whose one block is the whole tensor and the other
ranks register an empty block of it. Each rank then copies, hashes and
writes about 1/N of the state, and the version stores every tensor once,
in its real shape, as a distributed array: it restores on any number of
ranks (every rank reads the whole tensor, :func:`whole`).

DDP guarantees the replicas are identical; the guard here checks it once:
at the first save and whenever the set of tensors changes (the optimizer
creates its state lazily, a load replaces tensors), every rank hashes its
tensors and a tensor that differs from rank 0's fails the save on every
rank, naming it, before anything is captured. torch.distributed.checkpoint
assumes replicated tensors are identical without checking (its save plan
dedup); torch.save on rank 0 does too.

0-d tensors (Adam's ``step``) and empty ones stay per rank."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import xxhash

from ..comm import protocol
from ..errors import ProviderError


@dataclass(frozen=True)
class Block:
    """A numpy array registered as one block of a distributed array whose
    global shape is the whole tensor's (offset 0): the whole tensor on its
    owner (and at restore), an empty block elsewhere."""

    array: np.ndarray
    global_shape: tuple

    def register(self, core, name: str) -> None:
        core.register(name, self.array, global_shape=self.global_shape,
                      offset=(0,) * len(self.global_shape))


def splittable(a: np.ndarray) -> bool:
    return a.ndim >= 1 and a.size > 0


def owners(sizes: dict[str, int], nranks: int) -> dict[str, int]:
    """Owner rank of each tensor: largest first, each to the rank holding the
    fewest bytes so far (ties: the lower rank, then the name): a
    deterministic function of the names and sizes, so every rank computes
    the same map without communicating."""
    load = [0] * nranks
    out = {}
    for name in sorted(sizes, key=lambda k: (-sizes[k], k)):
        r = min(range(nranks), key=lambda i: (load[i], i))
        out[name] = r
        load[r] += sizes[name]
    return out


def whole(a: np.ndarray) -> Block:
    return Block(a, tuple(a.shape))


def empty(a: np.ndarray) -> Block:
    return Block(a[:0], tuple(a.shape))


class Shares:
    """The ownership plan of one rank, cached while the tensors stay the same
    (the Block objects too: the core keeps a registration whose object is
    unchanged, so a steady-state save registers nothing)."""

    def __init__(self, rank: int, nranks: int):
        self.rank, self.nranks = rank, nranks
        self._key: tuple | None = None
        self._verified: tuple | None = None
        self._owner: dict[str, int] = {}
        self._blocks: dict[str, Block] = {}

    def _plan(self, arrays: dict[str, np.ndarray]) -> tuple:
        key = tuple((n, a.__array_interface__["data"][0], a.shape, a.dtype.str)
                    for n, a in arrays.items())
        if key != self._key:
            sizes = {n: a.nbytes for n, a in arrays.items() if splittable(a)}
            self._owner = owners(sizes, self.nranks)
            self._blocks = {n: (whole if self._owner[n] == self.rank else empty)(arrays[n])
                            for n in self._owner}
            self._key = key
        return key

    def owned(self, name: str) -> bool:
        """Does this rank capture ``name`` (a tensor it owns or one kept per rank)?"""
        return self._owner.get(name, self.rank) == self.rank

    def layout(self, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
        """Local: the registrations of the current plan, unchecked (at open,
        before DDP may have broadcast rank 0's parameters)."""
        self._plan(arrays)
        return self._view(arrays)

    def _view(self, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
        return {n: self._blocks.get(n, a) for n, a in arrays.items()}

    def stale(self, comm, arrays: dict[str, np.ndarray]) -> bool:
        """Collective (one small reduction): must the replicas be checked
        before this save? Yes on every rank if the tensors changed on any
        (agreed, so no rank enters the check alone). Plans for ``arrays``."""
        return bool(protocol.any_bits(comm, int(self._plan(arrays) != self._verified)))

    def registrations(self, comm, arrays: dict[str, np.ndarray], check: bool) -> dict[str, Any]:
        """name -> what to register (a :class:`Block` for split tensors, the
        array itself otherwise) for the ``arrays`` :meth:`stale` just planned;
        collective with ``check`` (every rank passes what :meth:`stale`
        returned): the replicas are compared first."""
        if check:
            check_identical(comm, arrays)
            self._verified = self._key
        return self._view(arrays)


def _digests(arrays: dict[str, np.ndarray]) -> list[tuple[str, tuple, str, int]]:
    return [(n, tuple(a.shape), a.dtype.str,
             xxhash.xxh3_64_intdigest(np.ascontiguousarray(a).reshape(-1).view(np.uint8)))
            for n, a in arrays.items()]


def check_identical(comm, arrays: dict[str, np.ndarray]) -> None:
    """Collective: raise ``ProviderError`` on every rank, naming the first
    tensor and a rank where it differs, unless every rank holds the same
    tensors (names, shapes, dtypes, bytes) as rank 0."""
    mine = _digests(arrays)
    ref = protocol.from_root(comm, lambda: mine)

    def compare():
        if [m[0] for m in mine] != [r[0] for r in ref]:
            extra = sorted({m[0] for m in mine} ^ {r[0] for r in ref})
            raise ProviderError(
                f"replicated=True: rank {comm.rank} holds other tensors than rank 0 "
                f"({len(mine)} against {len(ref)}; e.g. {extra[:1]}): the replicas differ")
        for m, r in zip(mine, ref):
            if m != r:
                what = "shape/dtype" if m[1:3] != r[1:3] else "values"
                raise ProviderError(
                    f"replicated=True: tensor {m[0]!r} differs between rank 0 and rank "
                    f"{comm.rank} ({what}); the state is not replicated (not DDP?): use "
                    f"replicated=False to store each rank's own")
    protocol.agree(comm, compare)
