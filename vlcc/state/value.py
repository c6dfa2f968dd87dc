"""ValueProvider: small state (step, time, RNG state, config) via get/set."""

from __future__ import annotations

import pickle
from typing import Any, Callable

import numpy as np

from ..errors import MissingProviderError, ProviderError
from .provider import Leaf, Provider, direct
from ..repo.records import Kind


def pickle_bytes(value: Any, what: str) -> np.ndarray:
    try:
        raw = pickle.dumps(value, protocol=5)
    except Exception as exc:
        raise ProviderError(f"{what}: value of type {type(value).__name__} is not picklable: {exc}") from exc
    return np.frombuffer(bytearray(raw), dtype=np.uint8)  # writable: ADIOS2 refuses read-only buffers


class ValueProvider(Provider):
    """A picklable value read by ``get()`` at checkpoint and handed to ``set(v)``
    on restore. ``set`` may be omitted for write-only values (run metadata)."""

    def __init__(self, get: Callable[[], Any], set: Callable[[Any], None] | None = None):
        if not callable(get):
            raise ProviderError("ValueProvider(get=...) needs a callable")
        self._get, self._set = get, set
        self.name = ""

    def value(self) -> Any:
        """The current value (what the next checkpoint would store)."""
        return self._get()

    def capture(self, copy: bool, alloc=None) -> list[Leaf]:
        data = pickle_bytes(self._get(), f"provider {self.name!r}")
        return [Leaf(self.name, Kind.VALUE, "pickle", (), data=data)]

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
