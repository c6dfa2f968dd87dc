"""Sealed JSON (docs/format.md, section 6): the one canonical JSON form of
vlcc, and documents that carry the xxh3-128 of their own canonical form."""

from __future__ import annotations

import json

from ..errors import CorruptionError
from .checksums import text_hash


def canonical(doc) -> str:
    """Sorted keys, no spaces: the form checksums and codec keys are computed on."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def seal(doc: dict) -> bytes:
    """Serialize a manifest/index with a checksum over its canonical form.
    Compact: indent= makes json fall back to its pure-Python encoder, which
    dominated checkpoints of 10,000 small providers (0.75 s vs 0.63 s)."""
    body = {k: v for k, v in doc.items() if k != "checksum"}
    text = canonical(body)
    body["checksum"] = text_hash(text)
    return canonical(body).encode()


def unseal(raw: bytes, where: str) -> dict:
    """Parse and check a sealed JSON document; CorruptionError names ``where``."""
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise CorruptionError(f"{where}: truncated or corrupted JSON ({exc})") from exc
    except RecursionError:
        raise CorruptionError(f"{where}: JSON nested too deeply (not a vlcc document)") from None
    if not isinstance(doc, dict) or "checksum" not in doc:
        raise CorruptionError(f"{where}: not a sealed vlcc document (no checksum)")
    body = {k: v for k, v in doc.items() if k != "checksum"}
    if text_hash(canonical(body)) != doc["checksum"]:
        raise CorruptionError(f"{where}: checksum mismatch (file was modified or corrupted)")
    return doc
