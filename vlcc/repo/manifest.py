"""Version manifests: the JSON file whose atomic appearance commits a version
(docs/format.md, section 4), and the Version record users see."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field
from typing import Any

from ..errors import CorruptionError, FormatVersionError, NotFoundError
from . import format1, format2
from .fsutil import read_regular
from .schema import check_manifest
from .sealed import unseal
from ..repo.records import Kind

MANIFEST_VERSION = 4
READABLE = (1, 2, 3, 4)   # 3: tiled leaves (docs/format.md, 3.3); 4: node files (3.4)

@dataclass(frozen=True)
class Version:
    """One committed, immutable checkpoint. ``providers`` maps provider names to
    their stored description (kind, dtype, shapes, blocks)."""

    id: str
    parent: str | None
    branch: str
    step: int | None
    message: str
    time: float                 # seconds since the epoch (UTC)
    nranks: int
    attrs: dict = field(default_factory=dict)
    hosts: list = field(default_factory=list)
    slurm: dict = field(default_factory=dict)
    run: dict = field(default_factory=dict)
    providers: dict = field(default_factory=dict, repr=False)
    manifest: dict = field(default_factory=dict, repr=False, compare=False)
    pending: bool = False       # async mode: captured, not yet committed (not durable)
    root: str | None = field(default=None, compare=False)   # repository path, when loaded from one

    def __repr__(self) -> str:
        """Short, as ``vlcc log`` prints it: id, branch, step, date."""
        when = datetime.datetime.fromtimestamp(self.time, datetime.timezone.utc)
        step = "" if self.step is None else f" step={self.step}"
        pend = " pending" if self.pending else ""
        return (f"<vlcc.Version {self.id} branch={self.branch!r}{step} "
                f"{when:%Y-%m-%d %H:%M:%S}Z{pend}>")

    @property
    def decomposition(self) -> dict[str, list[dict]]:
        """Per distributed provider: the blocks (rank, offset, shape) it was written with."""
        out = {}
        for n, p in self.providers.items():
            if p["kind"] != Kind.DISTRIBUTED:
                continue
            ranks, offs, shps = stored_entry(p, self.nranks).boxes(self._read_side_file)
            out[n] = [{"rank": int(r), "offset": o.tolist(), "shape": s.tolist()}
                      for r, o, s in zip(ranks, offs, shps)]
        return out

    def _read_side_file(self, rel: str) -> bytes:
        if not self.root:
            raise NotFoundError(f"version {self.id}: decomposition table {rel} needs the repository "
                                f"path (use Repository.resolve)")
        try:
            return read_regular(os.path.join(self.root, *rel.split("/")),
                                f"version {self.id}: decomposition table {rel}")
        except FileNotFoundError:
            raise CorruptionError(f"version {self.id}: decomposition table {rel} is missing") from None

    @classmethod
    def from_manifest(cls, doc: dict, root: str | None = None) -> "Version":
        return cls(id=doc["id"], parent=doc.get("parent"), branch=doc["branch"],
                   step=doc.get("step"), message=doc.get("message", ""), time=doc["time"],
                   nranks=doc["nranks"], attrs=doc.get("attrs", {}), hosts=doc.get("hosts", []),
                   slurm=doc.get("slurm", {}), run=doc.get("run", {}),
                   providers=doc.get("providers", {}), manifest=doc,
                   pending=bool(doc.get("pending", False)), root=root)

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "parent": self.parent, "branch": self.branch, "step": self.step,
                "message": self.message, "time": self.time, "nranks": self.nranks,
                "attrs": self.attrs, "hosts": self.hosts, "slurm": self.slurm}


def nranks(doc: dict) -> int:
    return int(doc["nranks"])


def index_rel(vid: str, rank: int) -> str:
    return f"data/{vid}/r{rank}.idx.json"


def ranks_table_rel(vid: str) -> str:
    return f"data/{vid}/ranks.bin"


def node_index_rel(vid: str, node: int) -> str:
    return f"data/{vid}/n{node}.idx.json"


OWN_INDEX = 0xFFFFFFFF      # format 4 rank table: the rank's own index r<r>.idx.json
_RECORD4 = 20


def pack_ranks_table(checksums: list[str], nodes: list[int | None] | None = None) -> bytes:
    """The rank table ``ranks.bin``. Format 2/3 (``nodes`` None): the index
    checksums of all ranks, 16 raw bytes each, in rank order. Format 4: per
    rank the node whose index holds it (uint32 little-endian, OWN_INDEX for
    a rank index of its own) and that index file's checksum (section 3.4)."""
    if nodes is None:
        return b"".join(bytes.fromhex(c) for c in checksums)
    return b"".join((OWN_INDEX if k is None else int(k)).to_bytes(4, "little") + bytes.fromhex(c)
                    for k, c in zip(nodes, checksums))


def format_of(doc: dict):
    """The module of the manifest's format: repo/format1.py or repo/format2.py."""
    return format1 if doc.get("vlcc_manifest", 1) == format1.MANIFEST else format2


def stored_entry(e: dict, nranks: int) -> "format1.Entry | format2.Entry":
    """A manifest's provider entry as its format's typed record (``nblocks``,
    ``block_shape``, ``nbytes``, ``boxes(read_table)``)."""
    return (format1.Entry if format1.is_entry(e) else format2.Entry)(e, nranks)


def rank_indexes(paths, doc: dict) -> list[tuple[int, str, str]]:
    """(rank, index file relative to the repository, its checksum) per rank.
    Format 1 lists them in the manifest; format 2 in ``ranks.bin``, whose
    checksum the manifest holds (section 4); format 4 there too, the index
    file being a node index (section 3.4) or the rank's own."""
    if doc.get("vlcc_manifest", 1) == 1:
        return [(int(r["rank"]), r["index"], r["index_checksum"]) for r in doc["ranks"]]
    from .checksums import chunk_hash
    info = doc["ranks"]
    rel = info["table"]
    where = f"version {doc['id']}: rank table {paths.abs(rel)}"
    try:
        raw = read_regular(paths.abs(rel), where)
    except FileNotFoundError:
        raise CorruptionError(f"{where}: missing") from None
    size = 16 if doc["vlcc_manifest"] < 4 else _RECORD4
    if chunk_hash(raw) != info["checksum"] or len(raw) != size * nranks(doc):
        raise CorruptionError(f"{where}: checksum mismatch (file modified or truncated)")
    if size == 16:
        return [(r, index_rel(doc["id"], r), raw[16 * r:16 * r + 16].hex())
                for r in range(nranks(doc))]
    out = []
    for r in range(nranks(doc)):
        rec = raw[size * r:size * (r + 1)]
        k = int.from_bytes(rec[:4], "little")
        rel = index_rel(doc["id"], r) if k == OWN_INDEX else node_index_rel(doc["id"], k)
        out.append((r, rel, rec[4:].hex()))
    return out


def logical_bytes(doc: dict) -> int:
    """Bytes of the version's state (every rank's blocks, before dedup/encoding)."""
    return format_of(doc).logical_bytes(doc)


def load_manifest(path: str, vid: str, repo: str) -> dict:
    """Read, check and parse the manifest of version ``vid`` at ``path``: it
    must exist (else NotFoundError naming ``repo``), hold its seal, be of a
    manifest version this vlcc reads, and name ``vid``."""
    try:
        raw = read_regular(path, f"manifest of version {vid}")
    except FileNotFoundError:
        raise NotFoundError(f"unknown version {vid!r} in repository {repo}") from None
    doc = unseal(raw, f"manifest of version {vid} ({path})")
    if doc.get("vlcc_manifest") not in READABLE:
        raise FormatVersionError(f"manifest {path} has manifest version "
                                 f"{doc.get('vlcc_manifest')!r}; this vlcc reads "
                                 f"{', '.join(map(str, READABLE))} (written by a newer vlcc?)")
    if doc.get("id") != vid:
        raise CorruptionError(f"manifest {path} names version {doc.get('id')!r}, not {vid!r}")
    check_manifest(doc, f"manifest of version {vid} ({path})")
    return doc
