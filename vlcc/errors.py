"""The vlcc exception hierarchy: every error says what failed and where
(repository, version, provider, rank, file). Each class carries ``code``,
its C ABI error code (include/vlcc.h), so the C layer maps by class, never by
message text."""

from __future__ import annotations

from enum import IntEnum


class Code(IntEnum):
    """The C ABI's error codes (include/vlcc.h ``VLCC_*``): the one table;
    vlcc.capi.codes re-exports them for the C layer."""
    OK = 0
    EINIT = -1
    ESTATE = -2
    EINVAL = -3
    ENOTFOUND = -4
    EMISMATCH = -5
    EPROVIDER = -6
    ECORRUPT = -7
    ESTORAGE = -8
    EREPO = -9
    EEXISTS = -10
    ECOLLECTIVE = -11
    ETRUNC = -12
    EUNSUPPORTED = -13
    EINTERNAL = -99


class VlccError(Exception):
    """Base class of every error vlcc raises on purpose."""
    code = Code.EINTERNAL


class RepositoryError(VlccError):
    """The repository itself is unusable (missing, wrong path, not a repository)."""
    code = Code.EREPO


class FormatVersionError(RepositoryError):
    """The repository was written in a format version this vlcc cannot read."""


class StorageError(VlccError):
    """The storage refused a write or read (read-only path, no space, permissions)."""
    code = Code.ESTORAGE


class NotFoundError(VlccError, LookupError):
    """Unknown version, branch or tag."""
    code = Code.ENOTFOUND


class RefExistsError(VlccError):
    """A branch or tag of that name already exists."""
    code = Code.EEXISTS


class ProviderError(VlccError):
    """A provider was registered or used wrongly."""
    code = Code.EPROVIDER


class DuplicateProviderError(ProviderError):
    """A provider name is registered twice, or clashes with the name tree."""


class MissingProviderError(ProviderError):
    """A provider is registered but absent from the version, or the reverse."""


class ShapeMismatchError(ProviderError):
    """Shape, dtype or decomposition of a registered provider does not fit the stored one."""
    code = Code.EMISMATCH


class CorruptionError(VlccError):
    """Stored bytes or metadata do not match their checksum, or are truncated."""
    code = Code.ECORRUPT


class UnsafeValueError(VlccError):
    """A stored value is a pickle and the reader did not pass ``allow_pickle=True``
    (unpickling runs code chosen by whoever wrote the repository)."""
    code = -3           # VLCC_EINVAL


class CollectiveError(VlccError):
    """Raised on a rank whose own work succeeded when another rank failed; the
    message carries the failing rank's error."""
    code = Code.ECOLLECTIVE


class ArgumentError(VlccError, ValueError):
    """A bad argument (value out of range, wrong type): catch it as either."""
    code = Code.EINVAL


class LockBusyError(VlccError):
    """A repository lock is held by a live process (gc/prune while writers run,
    a checkpoint while gc runs, a branch move that timed out)."""
    code = Code.ESTATE


class BranchMovedError(VlccError):
    """The branch head moved under a writer (another job wrote to the same
    branch) and the version could not be rebased onto the new head."""
    code = Code.ESTATE


class DivergenceError(VlccError):
    """A checkpoint differs from the reference run's version of the same step
    beyond the tolerances (``Checkpointer(compare_to=..., on_diverge="raise")``).
    ``record`` holds the divergence: step, provider, index, size, ..."""
    code = Code.EMISMATCH

    def __init__(self, message: str, record: dict | None = None):
        super().__init__(message)
        self.record = record or {}


class MissingDependencyError(VlccError, ImportError):
    """An optional dependency of the feature in use is not installed; the
    message names the pip extra that brings it (``require``)."""
    code = -99          # VLCC_EINTERNAL


# Which pip extra (pyproject.toml) brings each optional module.
EXTRAS = {"matplotlib": "tools", "rich": "tools", "h5py": "tools", "blosc2": "compress",
          "zstandard": "compress", "zfpy": "compress", "checkpoint_schedules": "adjoint",
          "torch": "torch", "deepspeed": "torch", "mpi4py": "mpich", "mpich": "mpich"}


def require(module: str, what: str):
    """Import optional ``module`` for feature ``what``; if it is missing,
    raise MissingDependencyError: one line naming the extra to install."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise missing(module, what, exc) from None


def missing(module: str, what: str, exc: BaseException | None = None) -> MissingDependencyError:
    """The MissingDependencyError for ``module`` (``exc``: the ImportError seen)."""
    top = module.split(".")[0]
    extra = EXTRAS.get(top)
    how = f"pip install 'vlcc[{extra}]'" if extra else f"pip install {top}"
    why = f" ({exc})" if exc is not None and getattr(exc, "name", top) not in (None, top, module) else ""
    return MissingDependencyError(f"{what} needs the optional package {top}, which is not "
                                  f"installed: {how}{why}")


_BY_NAME = {c.__name__: c for c in (
    VlccError, RepositoryError, FormatVersionError, StorageError, NotFoundError,
    RefExistsError, ProviderError, DuplicateProviderError, MissingProviderError,
    ShapeMismatchError, CorruptionError, UnsafeValueError, CollectiveError, ArgumentError,
    LockBusyError, BranchMovedError, DivergenceError, MissingDependencyError)}


def error_class(name: str) -> type[VlccError]:
    """Map an exception class name sent from another rank back to a vlcc class.

    Foreign exceptions (OSError, ValueError, ...) become CollectiveError so that
    every rank raises a VlccError subclass with the same message."""
    return _BY_NAME.get(name, CollectiveError)


def storage_error(exc: OSError, what: str) -> StorageError:
    """Turn an OSError from a write into a StorageError naming what was written."""
    import errno
    reason = {errno.ENOSPC: "no space left on device", errno.EROFS: "read-only file system",
              errno.EACCES: "permission denied", errno.EDQUOT: "disk quota exceeded",
              errno.EPERM: "operation not permitted"}.get(exc.errno, exc.strerror or str(exc))
    return StorageError(f"{what}: {reason} ({exc.filename or ''})".replace(" ()", ""))
