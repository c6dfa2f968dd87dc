"""The provider base class and the captured unit (a Leaf with its bytes).

A provider is a named piece of state. Capturing it yields leaves: flat byte
buffers with enough description (kind, dtype, shape, decomposition) to store
and restore them. Kinds:

* ``distributed``: this rank's block of a global array (offset + shape);
  restorable on any rank count (N→M).
* ``array``: a plain per-rank array; restorable on another rank count only if
  all ranks held identical bytes (replicated).
* ``value``: a small Python object (step, RNG state, config), per rank.
* ``derived``: no bytes; a recipe recomputed from other providers on restore
  (state/derived.py).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ..repo.records import Kind


@dataclass
class Leaf:
    name: str
    kind: str                       # a repo.records.Kind
    dtype: str                      # numpy dtype str; values: "vlcc-value" or "pickle" (repo/values.py)
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


def direct(read):
    """A phase-1 ``read`` (see ``Provider.stage``) over a plain ``read(name, out)``
    that fills ``out`` itself: a one-shot restore straight into ``out``."""
    def staged_read(name, target, private=False):
        got = read(name, target)
        return target if target is not None else got
    return staged_read


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
        """Restore from the version in one go (``apply(stage(...))`` for the
        built-in kinds). ``stored`` maps leaf names of this provider to their
        manifest entries; ``read(leaf_name, out_or_None)`` fills an array
        (returns it) or returns a value."""

    # A restore is all-or-nothing for application memory (restore/collective.py):
    # phase 1 calls ``stage`` on every provider of every rank, phase 2 ``apply``
    # only if phase 1 succeeded everywhere.
    def stage(self, stored: dict[str, dict], read, where: str) -> Any:
        """Phase 1: read and check everything this provider needs WITHOUT
        touching application memory; return what ``apply`` needs.
        ``read(leaf_name, target)`` returns an array holding the stored bytes
        shaped like ``target`` (staging memory, or ``target`` itself when the
        restore reads straight into application memory), or the value when
        ``target`` is None; ``read(name, target, private=True)`` fills a
        ``target`` the provider just allocated itself. The default defers the
        whole restore to ``apply`` (providers that only define ``restore_leaves``)."""
        return stored, getattr(read, "direct", read)

    def apply(self, staged: Any) -> None:
        """Phase 2: put the staged state into application memory and run the
        application's callbacks (their errors cannot be undone)."""
        self.restore_leaves(*staged)

    def check_restore(self, stored: dict[str, dict], where: str) -> None:
        """Raise a ProviderError if the stored leaves cannot fill this provider.
        Called on every rank before any byte is read."""
