"""Derived providers: state declared as a function of other providers (a cast,
a recomputable field). A version stores the *recipe* — a JSON description and
the names of the inputs — and no bytes; restore recomputes the value from the
restored inputs and hands it to ``set`` or copies it into ``target``.

The function itself is code, not data: a version records what it was told the
function is (``recipe``), and restore refuses to run a registered derivation
whose recipe or inputs differ from the stored ones, so a changed formula is
an error, not silently different state."""

from __future__ import annotations

import json
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import MissingProviderError, ProviderError, ShapeMismatchError
from .provider import Leaf, Provider
from ..repo.records import Kind

KIND = Kind.DERIVED
DTYPE = "recipe"   # not a NumPy dtype: a reader that does not know derived leaves fails


class DerivedProvider(Provider):
    """``fn(*inputs)`` recomputed on restore.

    fn:      called with the current value of each input provider, in order:
             a numpy array provider gives its owned block (a view), a
             ValueProvider its ``get()`` (after its ``set`` restored it), an
             object provider its ``capture()`` dict, a derived provider its
             last recomputed value.
    inputs:  names of registered providers (registered before this one).
    recipe:  JSON-serializable description stored in the version (default:
             ``{"fn": "<module>.<qualname>"}``).
    set:     ``set(value)`` receives the recomputed value, and/or
    target:  a numpy array the value is copied into (shape and dtype checked).
    """

    def __init__(self, fn: Callable[..., Any], inputs: Sequence[str], *, recipe: Any = None,
                 set: Callable[[Any], None] | None = None, target: np.ndarray | None = None):
        if not callable(fn):
            raise ProviderError("DerivedProvider(fn=...) needs a callable")
        if isinstance(inputs, str) or not all(isinstance(x, str) for x in inputs) or not inputs:
            raise ProviderError("DerivedProvider(inputs=...) needs a non-empty list of provider names")
        if target is not None and not isinstance(target, np.ndarray):
            raise ProviderError(f"DerivedProvider(target=...) must be a numpy array, "
                                f"not {type(target).__name__}")
        if recipe is None:
            recipe = {"fn": f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"}
        try:
            text = json.dumps(recipe, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise ProviderError(f"DerivedProvider recipe must be JSON-serializable: {exc}") from None
        self.fn, self.inputs = fn, list(inputs)
        self.recipe = json.loads(text)      # the stored form (tuples become lists)
        self._set, self.target = set, target
        self.value: Any = None              # last recomputed value
        self.name = ""
        self._state = None

    def bind(self, state) -> None:
        """Called at registration: the inputs must already be registered."""
        missing = [x for x in self.inputs if x not in state.providers]
        if missing:
            raise MissingProviderError(f"derived provider {self.name!r}: inputs {missing} are not "
                                       f"registered (register them before the derived provider)")
        self._state = state

    def capture(self, copy: bool, alloc=None) -> list[Leaf]:
        leaf = Leaf(self.name, KIND, DTYPE, (), data=np.empty(0, np.uint8))
        leaf.extra = {"recipe": self.recipe, "inputs": self.inputs}
        return [leaf]

    def check_restore(self, stored, where):
        e = stored.get(self.name)
        if e is None:
            raise MissingProviderError(f"provider {self.name!r} is not in {where}")
        if e["kind"] != KIND:
            raise ProviderError(f"provider {self.name!r}: {where} stores it as stored bytes "
                                f"({e['kind']}), registered as derived")
        if e.get("inputs") != self.inputs or e.get("recipe") != self.recipe:
            raise ProviderError(f"derived provider {self.name!r}: {where} records recipe "
                                f"{e.get('recipe')!r} of inputs {e.get('inputs')!r}; registered "
                                f"{self.recipe!r} of {self.inputs!r} (the derivation changed)")

    def _input_value(self, name: str):
        from .array import ArrayProvider
        from .obj import ObjectProvider
        from .value import ValueProvider
        p = self._state.providers[name]
        if isinstance(p, ArrayProvider):
            return p.owned()
        if isinstance(p, ValueProvider):
            return p.value()
        if isinstance(p, DerivedProvider):
            return p.value
        if isinstance(p, ObjectProvider):
            return p.obj.capture()
        raise ProviderError(f"derived provider {self.name!r}: input {name!r} has no value")

    def stage(self, stored, read, where: str):
        # Nothing to read; the value is recomputed in phase 2 from the restored
        # inputs (restore_order puts derived providers last).
        if self.target is not None and not self.target.flags.writeable:
            raise ProviderError(f"derived provider {self.name!r}: its target array is read-only "
                                f"(writeable=False); cannot restore {where} into it")
        return None

    def apply(self, staged) -> None:
        self.restore_leaves({}, None)

    def restore_leaves(self, stored, read) -> None:
        try:
            value = self.fn(*[self._input_value(x) for x in self.inputs])
        except ProviderError:
            raise
        except Exception as exc:
            raise ProviderError(f"derived provider {self.name!r}: recomputing from "
                                f"{self.inputs} failed: {type(exc).__name__}: {exc}") from exc
        if self.target is not None:
            arr = np.asarray(value)
            if arr.shape != self.target.shape:
                raise ShapeMismatchError(f"derived provider {self.name!r}: recomputed shape "
                                         f"{arr.shape}, target {self.target.shape}")
            self.target[...] = arr
        self.value = value
        if self._set is not None:
            self._set(value)
