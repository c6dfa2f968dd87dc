"""Codec base class and registry (numcodecs-style: id + config round trip).

A codec turns a chunk's bytes into stored bytes and back. The index records
each chunk's codec config (``get_config``), so a version decodes with the
parameters it was written with, whatever the defaults are later."""

from __future__ import annotations

import abc

_REGISTRY: dict[str, type["Codec"]] = {}


class Codec(abc.ABC):
    codec_id: str = ""
    lossless: bool = True

    @abc.abstractmethod
    def encode(self, buf) -> bytes | memoryview: ...

    @abc.abstractmethod
    def decode(self, buf, nbytes: int) -> bytes | memoryview: ...

    def get_config(self) -> dict:
        return {"id": self.codec_id}

    @classmethod
    def from_config(cls, config: dict) -> "Codec":
        kw = {k: v for k, v in config.items() if k != "id"}
        return cls(**kw)

    def for_dtype(self, dtype: str) -> "Codec":
        """The codec to use for a leaf of numpy dtype ``dtype`` (e.g. with the
        element size as shuffle unit). Default: itself."""
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.get_config()})"


def register_codec(cls: type[Codec]) -> type[Codec]:
    _REGISTRY[cls.codec_id] = cls
    return cls


def known_codecs() -> list[str]:
    """Every codec usable here (the optional ones whose package is installed)."""
    for cid in _OPTIONAL:
        _load_optional(cid)
    return sorted(_REGISTRY)


# Codecs that register themselves only when their package is installed (the 'compress' extra):
# codec id -> (package, module of vlcc.encode). Imported at first use, not with vlcc: blosc2's
# import alone is ~0.5 s of every `vlcc` command's start.
_OPTIONAL = {"zstd": ("zstandard", "zstd"), "blosc2": ("blosc2", "blosc2"), "zfp": ("zfpy", "zfp")}


def _load_optional(cid: str) -> bool:
    """Import (and so register) optional codec ``cid``; False when its package is missing."""
    if cid not in _REGISTRY:
        import importlib
        try:
            importlib.import_module(f"{__package__}.{_OPTIONAL[cid][1]}")
        except ImportError:
            return False
    return cid in _REGISTRY


def get_codec(config) -> Codec:
    """A codec from its config dict, its id (str), or a Codec instance."""
    from ..errors import ArgumentError as VlccError  # argument errors (EINVAL)
    if isinstance(config, Codec):
        return config
    if isinstance(config, str):
        config = {"id": config}
    if not isinstance(config, dict):
        raise VlccError(f"a codec is given by id, config dict or Codec, not {type(config).__name__}")
    cid = config.get("id")
    if isinstance(cid, str) and cid not in _REGISTRY and cid in _OPTIONAL and not _load_optional(cid):
        from ..errors import missing   # a known codec whose package is not installed
        raise missing(_OPTIONAL[cid][0], f"codec {cid!r}")
    if cid not in _REGISTRY:
        raise VlccError(f"unknown codec {cid!r} (known: {', '.join(sorted(_REGISTRY))}; "
                        f"blosc2/zstd need the 'compress' extra: pip install 'vlcc[compress]')")
    try:
        return _REGISTRY[cid].from_config(config)
    except VlccError:
        raise
    except Exception as exc:   # noqa: BLE001 - the library's own complaint (zstd level 999: ValueError)
        raise VlccError(f"bad config for codec {cid!r} {config!r}: {exc}") from None
