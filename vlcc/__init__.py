"""vlcc — Versioned Lineage-driven Checkpointing of Composable States.

The public API (one page):

    Checkpointer(path, comm=None, branch="main", mode="sync")   collective
        .register(name, obj, global_shape=, offset=, halo=, on_restore=)
        .checkpoint(step=, message=, attrs=) -> Version        collective
        .restore(version=None, strict=True, atomic=None) -> Version   collective, N→M aware,
                                                               all-or-nothing (read+check, then copy)
        .branch(name, at=) / .switch(name) / .tag(name, v)     collective
        .log(branch=None) / .wait() / .close()
    Repository(path)                                           no MPI needed
        .log(branch=None) / .read(version, name) / .verify(version=None)
        .resolve(spec) / .branches() / .tags()
    ValueProvider(get, set)
    DerivedProvider(fn, inputs, recipe=, set=, target=)        or ck.register_derived(name, fn, inputs, ...)
    Version, and errors under VlccError
    diff(a, b, rtol=, atol=, providers=) -> list[dict]        "PATH[@SPEC]" targets (vlcc/tools/diff.py)
"""

from ._version import __version__  # noqa: E402

from .errors import (  # noqa: E402
    ArgumentError, BranchMovedError, CollectiveError, CorruptionError, DivergenceError,
    DuplicateProviderError, FormatVersionError, LockBusyError, MissingDependencyError,
    MissingProviderError, NotFoundError, ProviderError, RefExistsError, RepositoryError, ShapeMismatchError,
    StorageError, UnsafeValueError, VlccError,
)
from ._mpi import MPIUnavailableError  # noqa: E402  (MPI itself is loaded lazily)
from .repo.manifest import Version  # noqa: E402
from .repository import Repository  # noqa: E402
from .state.value import ValueProvider  # noqa: E402
from .state.derived import DerivedProvider  # noqa: E402
from .checkpointer import Checkpointer  # noqa: E402
from .tools.diff import diff  # noqa: E402

__all__ = [
    "Checkpointer", "Repository", "Version", "ValueProvider", "DerivedProvider",
    "VlccError", "RepositoryError", "FormatVersionError", "StorageError", "NotFoundError",
    "RefExistsError", "ProviderError", "DuplicateProviderError", "MissingProviderError",
    "ShapeMismatchError", "CorruptionError", "CollectiveError", "ArgumentError",
    "LockBusyError", "BranchMovedError", "diff", "DivergenceError", "MPIUnavailableError",
    "MissingDependencyError", "UnsafeValueError",
]
