"""The provider base class and the captured unit (a Leaf with its bytes).

A provider is a named piece of state. Capturing it yields leaves: flat byte
buffers with enough description (kind, dtype, shape, decomposition) to store
and restore them. Kinds:

* ``distributed``: this rank's block of a global array (offset + shape);
  restorable on any rank count (N→M).
* ``array``: a plain per-rank array; restorable on another rank count only if
  all ranks held identical bytes (replicated).
* ``value``: a small picklable object (step, RNG state, config), per rank.
* ``derived``: no bytes; a recipe recomputed from other providers on restore
  (state/derived.py).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np
from ..repo.records import Kind


@dataclass
class Leaf:
    name: str
    kind: str                       # a repo.records.Kind
    dtype: str                      # numpy dtype str, or "pickle" for values
    shape: tuple                    # owned local shape (() for values)
    global_shape: tuple | None = None
    offset: tuple | None = None
    of: str | None = None           # object provider this leaf belongs to
    data: np.ndarray | None = field(default=None, repr=False)   # flat uint8
    pooled: bool = False            # data is a private copy the memory tier may recycle
    extra: dict | None = None       # kind-specific manifest keys (derived: recipe, inputs)

    def describe(self) -> dict:
        d = {"kind": self.kind, "dtype": self.dtype, "shape": list(self.shape)}
        if self.extra:
            d.update(self.extra)
        if self.kind == Kind.DISTRIBUTED:
            d["global_shape"] = list(self.global_shape)
            d["offset"] = list(self.offset)
        if self.of:
            d["of"] = self.of
        return d


class Provider(abc.ABC):
    """Base class of every provider kind."""

    name: str

    @abc.abstractmethod
    def capture(self, copy: bool, alloc=None) -> list[Leaf]:
        """Leaves with their bytes. With ``copy`` the bytes must not alias
        application memory (async modes); without it they may (sync mode).
        ``alloc(nbytes)`` may hand out a recycled flat uint8 buffer (or None)."""

    @abc.abstractmethod
    def restore_leaves(self, stored: dict[str, dict], read) -> None:
        """Restore from the version. ``stored`` maps leaf names of this provider
        to their manifest entries; ``read(leaf_name, out_or_None)`` fills an
        array (returns it) or returns a value."""

    def check_restore(self, stored: dict[str, dict], where: str) -> None:
        """Raise a ProviderError if the stored leaves cannot fill this provider.
        Called on every rank before any byte is read."""
