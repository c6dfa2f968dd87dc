"""ValueProvider: small state (step, time, RNG state, config) via get/set."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..errors import MissingProviderError, ProviderError
from .provider import Leaf, Provider, direct
from ..repo.records import Kind
from ..repo.values import encode


def value_leaf(name: str, value: Any, allow_pickle: bool, of: str | None = None) -> Leaf:
    """A value's leaf in the safe encoding (repo/values.py), or a pickle
    when it needs one and ``allow_pickle``."""
    dtype, data = encode(value, f"provider {name!r}", allow_pickle)
    return Leaf(name, Kind.VALUE, dtype, (), of=of, data=data)


class ValueProvider(Provider):
    """A value read by ``get()`` at checkpoint and handed to ``set(v)`` on
    restore. ``set`` may be omitted for write-only values (run metadata).
    Stored in the safe value format (None, bool, int, float, complex, str,
    bytes, containers of them, numpy arrays and scalars; docs/format.md 3.5);
    anything else needs ``Checkpointer(allow_pickle=True)``."""

    allow_pickle = False     # set by the registry from Checkpointer(allow_pickle=)

    def __init__(self, get: Callable[[], Any], set: Callable[[Any], None] | None = None):
        if not callable(get):
            raise ProviderError("ValueProvider(get=...) needs a callable")
        self._get, self._set = get, set
        self.name = ""

    def value(self) -> Any:
        """The current value (what the next checkpoint would store)."""
        return self._get()

    def capture(self, copy: bool, alloc=None) -> list[Leaf]:
        return [value_leaf(self.name, self._get(), self.allow_pickle)]

    def check_restore(self, stored, where):
        if self.name not in stored:
            raise MissingProviderError(f"provider {self.name!r} is not in {where}")
        if stored[self.name]["kind"] != Kind.VALUE:
            raise ProviderError(f"provider {self.name!r}: {where} stores a "
                                f"{stored[self.name]['kind']}, registered a value")

    def stage(self, stored, read, where: str):
        return read(self.name, None)          # read, checked and unpickled in phase 1

    def apply(self, staged) -> None:
        if self._set is not None:
            self._set(staged)

    def restore_leaves(self, stored, read) -> None:
        self.apply(self.stage(stored, direct(read), "the version"))
