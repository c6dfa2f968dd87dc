"""Error codes and dtypes of the C ABI (mirror of include/vlcc.h) and the map from
vlcc exceptions to codes."""

from __future__ import annotations

import numpy as np

from .. import errors as E

# The codes are defined once, with the exception classes that carry them (errors.Code).
OK, EINIT, ESTATE, EINVAL, ENOTFOUND, EMISMATCH, EPROVIDER, ECORRUPT, ESTORAGE, EREPO, \
    EEXISTS, ECOLLECTIVE, ETRUNC, EUNSUPPORTED, EINTERNAL = (int(c) for c in E.Code)

NAMES = {int(c): "VLCC_" + c.name for c in E.Code}

# vlcc_dtype enum value -> numpy dtype (native byte order)
DTYPES = {0: np.uint8, 1: np.float32, 2: np.float64, 3: np.int8, 4: np.int16, 5: np.int32,
          6: np.int64, 7: np.uint8, 8: np.uint16, 9: np.uint32, 10: np.uint64,
          11: np.complex64, 12: np.complex128}

ORDER_C, ORDER_F = 0, 1


class CapiError(E.VlccError):
    """An error detected by the C ABI layer itself, carrying its code."""

    def __init__(self, code: int, msg: str):
        super().__init__(msg)
        self.code = code   # per instance: the C layer chooses it


def code_of(exc: BaseException) -> int:
    """The C code of an exception, by class: every vlcc error class carries its
    own (vlcc/errors.py); a raw OSError is a storage error."""
    if isinstance(exc, E.VlccError):
        return int(exc.code)
    if isinstance(exc, OSError):
        return ESTORAGE
    return EINTERNAL

