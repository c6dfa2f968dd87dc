"""Codec base class and registry (numcodecs-style: id + config round trip)."""

from __future__ import annotations

import abc

_REGISTRY: dict[str, type["Codec"]] = {}


class Codec(abc.ABC):
    codec_id: str = ""

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


def register_codec(cls: type[Codec]) -> type[Codec]:
    _REGISTRY[cls.codec_id] = cls
    return cls


def get_codec(config: dict) -> Codec:
    cid = config.get("id")
    if cid not in _REGISTRY:
        from ..errors import VlccError
        raise VlccError(f"unknown codec {cid!r} (known: {', '.join(sorted(_REGISTRY))})")
    return _REGISTRY[cid].from_config(config)
