"""Object providers: anything with ``capture() -> dict`` and ``restore(dict)``.
Each dict entry becomes a leaf ``NAME/KEY``: arrays are stored per rank,
everything else as a value (state/value.py)."""

from __future__ import annotations

import numpy as np

from ..errors import MissingProviderError, ProviderError
from .provider import Leaf, Provider, direct
from .value import value_leaf
from ..repo.records import Kind


class ObjectProvider(Provider):
    allow_pickle = False     # set by the registry from Checkpointer(allow_pickle=)

    def __init__(self, obj, name: str = ""):
        if not (callable(getattr(obj, "capture", None)) and callable(getattr(obj, "restore", None))):
            raise ProviderError(f"provider {name!r}: {type(obj).__name__} has no capture()/restore()")
        self.obj, self.name = obj, name

    def capture(self, copy: bool, alloc=None) -> list[Leaf]:
        state = self.obj.capture()
        if not isinstance(state, dict):
            raise ProviderError(f"provider {self.name!r}: capture() returned "
                                f"{type(state).__name__}, expected a dict")
        leaves = []
        for key in sorted(state):
            if not isinstance(key, str) or not key or "/" in key:
                raise ProviderError(f"provider {self.name!r}: capture() key {key!r} must be a "
                                    f"non-empty str without '/'")
            val = state[key]
            name = f"{self.name}/{key}"
            if isinstance(val, np.ndarray) and not val.dtype.hasobject:
                data = np.array(val, order="C", copy=True)
                leaves.append(Leaf(name, Kind.ARRAY, data.dtype.str, data.shape, of=self.name,
                                   data=data.reshape(-1).view(np.uint8)))
            else:
                leaves.append(value_leaf(name, val, self.allow_pickle, of=self.name))
        if not leaves:
            # An empty dict still records that the object was captured.
            leaves.append(value_leaf(self.name, {}, self.allow_pickle, of=self.name))
        return leaves

    def _mine(self, stored):
        return {n: e for n, e in stored.items() if e.get("of") == self.name}

    def check_restore(self, stored, where):
        if not self._mine(stored):
            raise MissingProviderError(f"provider {self.name!r} is not in {where}")

    def stage(self, stored, read, where: str):
        state = {}
        for n, e in sorted(self._mine(stored).items()):
            if n == self.name:
                continue
            key = n[len(self.name) + 1:]
            if e["kind"] == Kind.ARRAY:
                # Fresh arrays handed to restore(): no application memory, no staging copy.
                out = np.empty(tuple(e["shape"]), dtype=np.dtype(e["dtype"]))
                state[key] = read(n, out, private=True)
            else:
                state[key] = read(n, None)
        return state

    def apply(self, staged) -> None:
        self.obj.restore(staged)

    def restore_leaves(self, stored, read) -> None:
        self.apply(self.stage(stored, direct(read), "the version"))
