"""The composed state: a tree of provider names registered by independent
modules. One checkpoint captures every registered provider."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from ..errors import DuplicateProviderError, ProviderError
from .array import ArrayProvider
from .derived import DerivedProvider
from .obj import ObjectProvider
from .provider import Leaf, Provider
from .value import ValueProvider

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*(/[A-Za-z0-9_][A-Za-z0-9_.\-]*)*$")


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ProviderError(f"invalid provider name {name!r}: use parts of letters, digits, "
                            f"'_', '.', '-' separated by '/', e.g. 'solver/u'")
    return name


def make_provider(name: str, obj: Any, **kw) -> Provider:
    """Pick the provider kind for ``obj``."""
    if isinstance(obj, Provider):
        if kw:
            raise ProviderError(f"provider {name!r}: options {sorted(kw)} apply to arrays only")
        obj.name = name
        return obj
    if isinstance(obj, np.ndarray):
        return ArrayProvider(obj, name=name, **kw)
    if kw:
        raise ProviderError(f"provider {name!r}: options {sorted(kw)} apply to numpy arrays only")
    if hasattr(obj, "capture") and hasattr(obj, "restore"):
        return ObjectProvider(obj, name=name)
    raise ProviderError(f"provider {name!r}: cannot register a {type(obj).__name__}; register a numpy "
                        f"array, a vlcc.ValueProvider, or an object with capture()/restore()")


class State:
    """Registered providers by name, in registration order."""

    def __init__(self, allow_pickle: bool = False):
        self.providers: dict[str, Provider] = {}
        # Values the safe format cannot hold are pickled only when the
        # Checkpointer opted in (repo/values.py).
        self.allow_pickle = bool(allow_pickle)

    def add(self, name: str, obj: Any, **kw) -> Provider:
        check_name(name)
        if name in self.providers:
            raise DuplicateProviderError(f"provider {name!r} is already registered")
        for other in self.providers:
            if other.startswith(name + "/") or name.startswith(other + "/"):
                raise DuplicateProviderError(f"provider {name!r} clashes with registered provider "
                                             f"{other!r}: a name cannot be both a leaf and a group")
        p = make_provider(name, obj, **kw)
        if isinstance(p, (ValueProvider, ObjectProvider)):
            p.allow_pickle = self.allow_pickle
        if isinstance(p, DerivedProvider):
            p.bind(self)
        self.providers[name] = p
        return p

    def remove(self, name: str) -> None:
        users = [n for n, p in self.providers.items()
                 if isinstance(p, DerivedProvider) and name in p.inputs]
        if users:
            raise ProviderError(f"provider {name!r} is an input of derived provider(s) {users}; "
                                f"unregister those first")
        if self.providers.pop(name, None) is None:
            raise ProviderError(f"provider {name!r} is not registered")

    def restore_order(self) -> list[Provider]:
        """Providers with stored bytes first, then derived ones in registration
        order (their inputs were registered before them)."""
        ps = list(self.providers.values())
        return ([p for p in ps if not isinstance(p, DerivedProvider)]
                + [p for p in ps if isinstance(p, DerivedProvider)])

    def capture(self, copy: bool, alloc=None) -> list[Leaf]:
        leaves: list[Leaf] = []
        for p in self.providers.values():
            try:
                leaves.extend(p.capture(copy, alloc))
            except ProviderError:
                raise
            except Exception as exc:
                raise ProviderError(f"capturing provider {p.name!r} failed: "
                                    f"{type(exc).__name__}: {exc}") from exc
        return leaves
