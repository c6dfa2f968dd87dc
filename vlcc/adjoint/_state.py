"""The one place where vlcc.adjoint touches the core's internals.

The core (checkpointer, state/, repo/) is being restructured; every access the
adjoint executor needs beyond the public API lives here, so a change of the
core means a change of this file only:

* ``capture(ck, alloc)`` / ``restore(ck, snap)``: copy the Checkpointer's
  registered providers into a RAM snapshot and back, without writing a version
  (the same leaves a checkpoint captures; restore mirrors the core's
  restore-from-memory path: providers with bytes first, derived ones after).
* ``remove_versions(path, branch, vids)``: delete the adjoint's private versions
  and their branch after a run (the public Repository has no delete).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field

import numpy as np

from ..errors import ProviderError


@dataclass
class Snapshot:
    """A RAM copy of every registered provider (this rank's part)."""
    leaves: list = field(repr=False)          # core Leaf objects with private data buffers
    nbytes: int = 0

    def buffers(self) -> list[np.ndarray]:
        """Flat uint8 buffers that may be recycled when the snapshot is dropped."""
        return [leaf.data for leaf in self.leaves if getattr(leaf, "pooled", False)]


def _registry(ck):
    from ..checkpointer import session
    return session(ck).state                          # core: state/registry.State


def provider_names(ck) -> list[str]:
    return list(_registry(ck).providers)


def state_nbytes(ck) -> int:
    """Bytes of one snapshot of the array providers (this rank)."""
    from ..state.array import ArrayProvider
    return sum(int(np.prod(p.owned_shape)) * p.array.dtype.itemsize
               for p in _registry(ck).providers.values() if isinstance(p, ArrayProvider))


def capture(ck, alloc=None) -> Snapshot:
    """Copy every registered provider into private buffers (``alloc(nbytes)`` may
    hand out a recycled flat uint8 buffer, or None)."""
    reg = _registry(ck)
    if not reg.providers:
        raise ProviderError("adjoint: nothing to snapshot: no provider is registered in the "
                            "Checkpointer (register the forward state before Adjoint runs)")
    leaves = reg.capture(copy=True, alloc=alloc)
    return Snapshot(leaves, sum(0 if leaf.data is None else leaf.data.nbytes for leaf in leaves))


def restore(ck, snap: Snapshot) -> None:
    """Write a RAM snapshot back into the registered providers (local, no MPI)."""
    from ..restore.sources import copy_leaf
    reg = _registry(ck)
    by_name = {leaf.name: leaf for leaf in snap.leaves}
    stored = {name: leaf.describe() | {"blocks": [], "replicated": False}
              for name, leaf in by_name.items()}

    def read(name, out):
        return copy_leaf(by_name[name], out, "the adjoint's RAM snapshot", reg.allow_pickle)

    for p in reg.restore_order():
        p.check_restore(stored, "the adjoint's RAM snapshot")
        p.restore_leaves(stored, read)


def remove_versions(path: str, branch: str, vids: list[str]) -> None:
    """Rank 0: delete ``branch`` and the versions ``vids`` (manifests, then data)
    under gc's exclusive lock. Safe because nothing else references them: they
    only ever were the lineage of the private branch (dedup references point to
    a version's parent or to the same version)."""
    from ..repo import refs
    from ..repo.fsutil import fsync_dir
    from ..repo.locks import gc_exclusive as exclusive
    from ..repo.paths import RepoPaths as Layout
    layout = Layout(path)
    with exclusive(layout):
        # Versions another ref still names (someone tagged or branched one) stay.
        named = set(refs.list_refs(layout, "tag").values())
        named |= {v for b, v in refs.list_refs(layout, "branch").items() if b != branch}
        with refs.ref_lock(layout, "branch", branch):
            try:
                os.unlink(layout.ref("branch", branch))
            except FileNotFoundError:
                pass
        gone = [v for v in vids if v not in named]
        for vid in gone:
            try:
                os.unlink(layout.manifest(vid))
            except FileNotFoundError:
                pass
        if gone:
            fsync_dir(layout.versions_dir)
        for vid in gone:
            shutil.rmtree(layout.data_dir(vid), ignore_errors=True)
        if gone:
            fsync_dir(layout.p("data"))
        # Empty directories left by a nested branch name (adjoint/<run>) are removed.
        d = os.path.dirname(layout.ref("branch", branch))
        root = layout.ref_dir("branch")
        while os.path.abspath(d) != os.path.abspath(root):
            try:
                os.rmdir(d)
            except OSError:
                break
            d = os.path.dirname(d)
