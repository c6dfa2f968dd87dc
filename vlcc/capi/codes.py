"""Error codes and dtypes of the C ABI (mirror of include/vlcc.h) and the map from
vlcc exceptions to codes."""

from __future__ import annotations

import numpy as np

from .. import errors as E

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

NAMES = {v: "VLCC_" + k for k, v in dict(
    OK=OK, EINIT=EINIT, ESTATE=ESTATE, EINVAL=EINVAL, ENOTFOUND=ENOTFOUND, EMISMATCH=EMISMATCH,
    EPROVIDER=EPROVIDER, ECORRUPT=ECORRUPT, ESTORAGE=ESTORAGE, EREPO=EREPO, EEXISTS=EEXISTS,
    ECOLLECTIVE=ECOLLECTIVE, ETRUNC=ETRUNC, EUNSUPPORTED=EUNSUPPORTED,
    EINTERNAL=EINTERNAL).items()}

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
    """The C code of an exception: every vlcc error class carries its own
    (vlcc/errors.py); a raw OSError is a storage error."""
    if isinstance(exc, E.VlccError):
        return exc.code
    if isinstance(exc, OSError):
        return ESTORAGE
    return EINTERNAL

