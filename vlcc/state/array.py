"""Array providers: a plain per-rank numpy array, or this rank's block of a
distributed array (global shape, offset of the owned region, halo width)."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..errors import MissingProviderError, ProviderError, ShapeMismatchError
from .provider import Leaf, Provider, direct
from ..repo.records import Kind


def _ints(xs, what: str, name: str) -> tuple[int, ...]:
    """A sequence of ints (not floats, strings or bools: ``int("3")`` and
    ``int(2.7)`` would silently store something else)."""
    try:
        items = tuple(xs)
    except TypeError:
        items = None
    if items is None or not all(isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))
                                for x in items):
        raise ProviderError(f"provider {name!r}: {what} must be a sequence of ints, got {xs!r}")
    return tuple(int(x) for x in items)


class ArrayProvider(Provider):
    def __init__(self, array: np.ndarray, *, global_shape: Sequence[int] | None = None,
                 offset: Sequence[int] | None = None, halo: int | Sequence[int] = 0,
                 on_restore: Callable[[np.ndarray], None] | None = None, name: str = ""):
        if not isinstance(array, np.ndarray):
            raise ProviderError(f"provider {name!r}: expected a numpy array, got {type(array).__name__}")
        if array.dtype.hasobject:
            raise ProviderError(f"provider {name!r}: object arrays cannot be stored; use a ValueProvider")
        if array.dtype.kind == "V":
            # The stored dtype string of a structured/void array ('|V12') loses its field
            # names, so every later restore would fail: refuse now, not at restore time.
            raise ProviderError(f"provider {name!r}: structured or void dtype {array.dtype} cannot be "
                                f"stored; register each field as its own array (arr[{'field'!r}])")
        self.name = name
        self.array = array
        nd = array.ndim
        scalar = isinstance(halo, (int, np.integer)) and not isinstance(halo, (bool, np.bool_))
        h = (int(halo),) * nd if scalar else _ints(halo, "halo", name)
        if len(h) != nd or any(x < 0 for x in h):
            raise ProviderError(f"provider {name!r}: halo {halo!r} does not fit a {nd}-D array")
        owned = tuple(n - 2 * x for n, x in zip(array.shape, h))
        if any(n < 0 for n in owned):
            raise ProviderError(f"provider {name!r}: halo {h} is wider than the array {array.shape}")
        self.halo = h
        self.owned_shape = owned
        self.on_restore = on_restore
        if global_shape is None:
            if offset is not None:
                raise ProviderError(f"provider {name!r}: offset given without global_shape")
            self.kind = Kind.ARRAY
            self.global_shape = self.offset = None
        else:
            gs = _ints(global_shape, "global_shape", name)
            off = _ints(offset if offset is not None else (0,) * nd, "offset", name)
            if len(gs) != nd or len(off) != nd:
                raise ProviderError(f"provider {name!r}: global_shape {gs} / offset {off} must have "
                                    f"{nd} entries like the array")
            if any(o < 0 or o + n > g for o, n, g in zip(off, owned, gs)):
                raise ProviderError(f"provider {name!r}: owned block at offset {off} with shape {owned} "
                                    f"lies outside the global shape {gs}")
            if 0 in gs:
                # its stored tile grid would have an empty extent, which readers reject
                raise ProviderError(f"provider {name!r}: global_shape {gs} has no elements; a "
                                    f"distributed array needs at least one (register an empty "
                                    f"per-rank array instead)")
            self.kind = Kind.DISTRIBUTED
            self.global_shape, self.offset = gs, off

    def owned(self) -> np.ndarray:
        """The owned interior (a view; halos excluded)."""
        if not any(self.halo):
            return self.array
        return self.array[tuple(slice(x, n - x) for x, n in zip(self.halo, self.array.shape))]

    def leaf(self) -> Leaf:
        return Leaf(self.name, self.kind, self.array.dtype.str, self.owned_shape,
                    self.global_shape, self.offset)

    def capture(self, copy: bool, alloc=None) -> list[Leaf]:
        own = self.owned()
        leaf = self.leaf()
        if not copy:
            leaf.data = np.ascontiguousarray(own).reshape(-1).view(np.uint8)
            return [leaf]
        # A private flat buffer, recycled from the memory tier when one of this
        # size is free: no page faults (a fresh 64 MiB buffer costs ~150 ms of
        # faults and hugepage compaction here, the copy itself ~9 ms).
        buf = alloc(own.nbytes) if (alloc is not None and own.nbytes) else None
        if buf is None:
            buf = np.empty(own.nbytes, np.uint8)
        dst = buf.view(own.dtype).reshape(own.shape)
        # the allocator may take the copy over (lazy capture: copied in the
        # background while the caller promises not to modify the array)
        later = getattr(alloc, "later", None)
        if later is None or not later(self.name, dst, own):
            np.copyto(dst, own)
        leaf.data, leaf.pooled = buf, True
        return [leaf]

    def check_restore(self, stored, where):
        e = stored.get(self.name)
        if e is None:
            raise MissingProviderError(f"provider {self.name!r} is not in {where}")
        if e["kind"] != self.kind:
            raise ShapeMismatchError(f"provider {self.name!r}: {where} stores a {e['kind']} array, "
                                     f"registered a {self.kind} array")
        if np.dtype(e["dtype"]) != self.array.dtype:
            raise ShapeMismatchError(f"provider {self.name!r}: dtype mismatch, {where} has "
                                     f"{np.dtype(e['dtype'])}, registered {self.array.dtype}")
        if self.kind == Kind.DISTRIBUTED:
            if tuple(e["global_shape"]) != self.global_shape:
                raise ShapeMismatchError(f"provider {self.name!r}: global shape mismatch, {where} has "
                                         f"{tuple(e['global_shape'])}, registered {self.global_shape}")
        # Per-rank shapes may differ between ranks: checked against this rank's
        # stored block when it is read (before any byte is copied).

    def stage(self, stored, read, where: str):
        if not self.array.flags.writeable:
            raise ProviderError(f"provider {self.name!r}: the registered array is read-only "
                                f"(writeable=False); cannot restore {where} into it")
        target = self.owned()
        # ``read.deferred`` (restore/staging.py) may return the verified copies
        # of phase 2 as a callable instead of a staged array.
        return target, getattr(read, "deferred", read)(self.name, target)

    def apply(self, staged) -> None:
        target, got = staged
        if callable(got):            # phase 1 verified in place: copy now
            got()
        elif got is not target:      # staged: one copy into the application's array
            np.copyto(target, got)
        if self.on_restore is not None:
            self.on_restore(self.array)

    def restore_leaves(self, stored, read) -> None:
        self.apply(self.stage(stored, direct(read), "the version"))
