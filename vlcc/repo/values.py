"""The stored form of a ``value`` leaf (docs/format.md, section 3.5): a safe,
self-describing encoding that reading can never turn into code execution.

Format 4 writes values as dtype ``"vlcc-value"``: the magic ``VLCCVAL1``, an
8-byte little-endian length, a UTF-8 JSON tree, then raw byte buffers. JSON
natives stand for themselves (``null``, ``true``, ``false``, strings, integers
of any size, finite floats); every other node is a one-key object whose key
names the exact Python type, so tuple vs list, ``bytes`` vs ``bytearray`` and
dict keys that are not strings round-trip exactly. numpy arrays and scalars
store their dtype descriptor and shape in the tree and their bytes in the
buffer section (C order; object dtypes are refused). Anything else (a class
instance, a namedtuple, a subclass of a builtin) is only stored as a pickle,
dtype ``"pickle"``, when the writer opted in with ``allow_pickle=True``; a
reader unpickles only with ``allow_pickle=True`` too.
"""

from __future__ import annotations

import json
import math
import pickle
import struct
from typing import Any

import numpy as np

from ..errors import CorruptionError, ProviderError, UnsafeValueError

SAFE = "vlcc-value"        # dtype of a safely encoded value leaf
PICKLE = "pickle"          # dtype of a pickled value leaf (formats 1-3, or opted in)
VALUE_DTYPES = (SAFE, PICKLE)
MAGIC = b"VLCCVAL1"
MAX_DEPTH = 200            # nesting limit, far below the interpreter's recursion limit
_HEAD = struct.Struct("<8sQ")


class _Unsupported(Exception):
    def __init__(self, obj: Any, path: str):
        super().__init__(path)
        self.obj, self.path = obj, path


def _descr_of(dt: np.dtype):
    return dt.str if dt.fields is None and dt.subdtype is None else np.lib.format.dtype_to_descr(dt)


class _Encoder:
    def __init__(self):
        self.buffers: list[bytes] = []
        self.size = 0

    def _buffer(self, raw) -> list[int]:
        at = [self.size, len(raw)]
        self.buffers.append(raw)
        self.size += len(raw)
        return at

    def enc(self, x: Any, depth: int = 0):
        if depth > MAX_DEPTH:
            raise _Unsupported(x, f" (nested deeper than {MAX_DEPTH} levels)")
        t = type(x)
        if x is None or t is bool or t is str or t is int:
            return x
        if t is float:
            return x if math.isfinite(x) else {"float": repr(x)}
        d = depth + 1
        try:
            if t is list:
                return [self.enc(v, d) for v in x]
            if t is tuple:
                return {"tuple": [self.enc(v, d) for v in x]}
            if t is dict:
                return {"dict": [[self.enc(k, d), self.enc(v, d)] for k, v in x.items()]}
            if t is set or t is frozenset:
                return {t.__name__: [self.enc(v, d) for v in x]}
        except _Unsupported as u:
            u.path = f" in a {t.__name__}" + u.path if len(u.path) < 60 else u.path
            raise
        if t is bytes:
            return {"bytes": self._buffer(x)}
        if t is bytearray:
            return {"bytearray": self._buffer(bytes(x))}
        if t is complex:
            return {"complex": [self.enc(x.real, d), self.enc(x.imag, d)]}
        if t is np.ndarray or isinstance(x, np.generic):
            a = np.asarray(x)
            if a.dtype.hasobject:
                raise _Unsupported(x, " (a numpy array of Python objects)")
            node = {"dtype": self.enc(_descr_of(a.dtype), d), "shape": list(a.shape),
                    "data": self._buffer(np.ascontiguousarray(a).tobytes())}
            return {"ndarray" if t is np.ndarray else "npscalar": node}
        raise _Unsupported(x, "")


def encode(value: Any, what: str, allow_pickle: bool = False) -> tuple[str, np.ndarray]:
    """``(dtype, flat uint8 bytes)`` of a value: the safe encoding, or a
    pickle if the value needs one and ``allow_pickle``; otherwise a
    ProviderError naming ``what`` and the offending type."""
    e = _Encoder()
    try:
        tree = e.enc(value)
    except _Unsupported as u:
        if not allow_pickle:
            raise ProviderError(
                f"{what}: cannot store a {type(u.obj).__module__}.{type(u.obj).__qualname__}"
                f"{u.path} in the safe value format (None, bool, int, float, "
                f"complex, str, bytes, bytearray, list, tuple, dict, set, frozenset, numpy arrays "
                f"and scalars); convert it, or pass allow_pickle=True to the Checkpointer to "
                f"store it as a pickle (readers then need allow_pickle=True too)") from None
        try:
            raw = pickle.dumps(value, protocol=5)
        except Exception as exc:
            raise ProviderError(f"{what}: value of type {type(value).__name__} is not "
                                f"picklable: {exc}") from exc
        return PICKLE, np.frombuffer(bytearray(raw), np.uint8)
    head = json.dumps(tree, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    out = bytearray(_HEAD.size + len(head) + e.size)   # writable: ADIOS2 refuses read-only buffers
    _HEAD.pack_into(out, 0, MAGIC, len(head))
    out[_HEAD.size:_HEAD.size + len(head)] = head
    pos = _HEAD.size + len(head)
    for b in e.buffers:
        out[pos:pos + len(b)] = b
        pos += len(b)
    return SAFE, np.frombuffer(out, np.uint8)


class _Decoder:
    def __init__(self, body: memoryview, where: str):
        self.body, self.where = body, where

    def _bad(self, why: str):
        return CorruptionError(f"{self.where}: stored value is malformed: {why}")

    def _buf(self, at) -> memoryview:
        if (not isinstance(at, list) or len(at) != 2 or not all(type(i) is int for i in at)
                or at[0] < 0 or at[1] < 0 or at[0] + at[1] > len(self.body)):
            raise self._bad(f"buffer reference {str(at)[:60]} outside the "
                            f"{len(self.body)} stored bytes")
        return self.body[at[0]:at[0] + at[1]]

    def dec(self, x: Any, depth: int = 0):
        if depth > MAX_DEPTH:
            raise self._bad(f"nested deeper than {MAX_DEPTH} levels")
        t = type(x)
        if x is None or t in (bool, str, int, float):
            return x
        if t is list:
            return [self.dec(v, depth + 1) for v in x]
        if t is not dict or len(x) != 1:
            raise self._bad(f"unexpected node {str(x)[:60]}")
        (tag, v), = x.items()
        if tag == "tuple" and type(v) is list:
            return tuple(self.dec(i, depth + 1) for i in v)
        if tag == "dict" and type(v) is list:
            out = {}
            for kv in v:
                if type(kv) is not list or len(kv) != 2:
                    raise self._bad("a dict item is not a [key, value] pair")
                k = self.dec(kv[0], depth + 1)
                try:
                    out[k] = self.dec(kv[1], depth + 1)
                except TypeError:
                    raise self._bad(f"unhashable dict key of type {type(k).__name__}") from None
            return out
        if tag == "float" and v in ("nan", "inf", "-inf"):
            return float(v)
        if tag == "bytes":
            return bytes(self._buf(v))
        if tag == "bytearray":
            return bytearray(self._buf(v))
        if tag == "complex" and type(v) is list and len(v) == 2:
            re_, im = (self.dec(i, depth + 1) for i in v)
            if type(re_) is not float or type(im) is not float:
                raise self._bad("complex parts are not floats")
            return complex(re_, im)
        if tag in ("set", "frozenset") and type(v) is list:
            try:
                items = [self.dec(i, depth + 1) for i in v]
                return set(items) if tag == "set" else frozenset(items)
            except TypeError:
                raise self._bad(f"unhashable item in a {tag}") from None
        if tag in ("ndarray", "npscalar") and type(v) is dict:
            return self._array(tag, v, depth)
        raise self._bad(f"unknown node {tag[:40]!r}" if isinstance(tag, str) else "bad node")

    def _array(self, tag: str, v: dict, depth: int):
        try:
            descr = self.dec(v["dtype"], depth + 1)
            dt = np.dtype(descr) if type(descr) is str else np.lib.format.descr_to_dtype(descr)
        except (KeyError, TypeError, ValueError) as exc:
            raise self._bad(f"bad numpy dtype: {str(exc)[:80]}") from None
        if dt.hasobject:
            raise self._bad("a numpy array of Python objects")
        shape = v.get("shape")
        if (type(shape) is not list or not all(type(n) is int and n >= 0 for n in shape)
                or (tag == "npscalar" and shape)):
            raise self._bad(f"bad numpy shape {str(shape)[:60]}")
        raw = self._buf(v.get("data"))
        count = math.prod(shape)
        if count * dt.itemsize != len(raw):
            raise self._bad(f"numpy array of shape {tuple(shape)} and dtype {dt} needs "
                            f"{count * dt.itemsize} bytes, {len(raw)} stored")
        a = (np.frombuffer(raw, dt, count) if dt.itemsize else np.empty(count, dt)).reshape(shape).copy()
        return a[()] if tag == "npscalar" else a


def decode(raw, dtype: str, where: str, allow_pickle: bool = False) -> Any:
    """The value stored as ``raw`` (bytes-like) with leaf dtype ``dtype``.
    Malformed bytes raise CorruptionError; a pickle without ``allow_pickle``
    raises UnsafeValueError (nothing is unpickled).

    The leaf dtype is the provider's (rank 0's) in the manifest, but a writer
    with ``allow_pickle=True`` pickles per rank only the values that need it:
    each block is therefore decoded by what its bytes are (the safe encoding
    starts with ``MAGIC``, which no pickle does), and a pickle under a "safe"
    dtype is taken as one only when the reader opted in too."""
    head = bytes(memoryview(raw).cast("B")[:len(MAGIC)])
    if head == MAGIC and dtype == PICKLE:
        dtype = SAFE
    elif dtype == SAFE and allow_pickle and head[:1] == b"\x80":   # pickle protocol >= 2
        dtype = PICKLE
    if dtype == PICKLE:
        if not allow_pickle:
            raise UnsafeValueError(
                f"{where} is stored as a pickle (written by vlcc format 1-3, or with "
                f"allow_pickle=True); unpickling runs code chosen by whoever wrote the "
                f"repository, so it is refused: pass allow_pickle=True (CLI: --allow-pickle) "
                f"only for repositories you trust")
        try:
            return pickle.loads(bytes(raw))
        except Exception as exc:
            raise CorruptionError(f"{where}: cannot unpickle value: {exc}") from exc
    if dtype != SAFE:
        raise CorruptionError(f"{where}: unknown value encoding {str(dtype)[:40]!r}")
    mv = memoryview(raw).cast("B")
    if len(mv) < _HEAD.size:
        raise CorruptionError(f"{where}: stored value is truncated ({len(mv)} bytes)")
    magic, n = _HEAD.unpack_from(mv, 0)
    if magic != MAGIC or n > len(mv) - _HEAD.size:
        raise CorruptionError(f"{where}: stored value is malformed (bad header)")
    try:
        tree = json.loads(bytes(mv[_HEAD.size:_HEAD.size + n]).decode())
    except RecursionError:
        raise CorruptionError(f"{where}: stored value is malformed: nested too deeply") from None
    except ValueError as exc:
        raise CorruptionError(f"{where}: stored value is malformed: {str(exc)[:80]}") from None
    return _Decoder(mv[_HEAD.size + n:], where).dec(tree)
