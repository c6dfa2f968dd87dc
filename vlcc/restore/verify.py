"""``Repository.verify``: check every checksum of stored versions (manifests,
indexes, every chunk, block digests), and with ``deep`` compare every stored
copy of each shared chunk hash byte for byte (docs/format.md, section 10)."""

from __future__ import annotations

import os

import numpy as np

from ..encode import get_codec
from ..errors import CorruptionError, NotFoundError
from ..io.bp5 import BlockReader
from ..redundancy.dedup import codec_key
from ..repo.checksums import chunk_hash, digest_of
from ..repo import nodelocal
from ..repo.paths import is_version_id
from .reader import VersionReader


def verify(repo, version=None, *, deep: bool = False) -> dict:
    """Check every checksum (manifests, indexes, every chunk, block
    digests) of one version or, when ``version`` is None, of all and every
    branch and tag (see ``_verify_all``: it reports every damage, not only
    the first). One version: raises CorruptionError at the first problem,
    naming version, provider, rank and file. Returns counts.

    ``deep``: do not take the chunk hash as proof of identity (docs/format.md,
    section 10, "Hash collisions"). Every chunk hash referenced from several
    places (versions, ranks, leaves, repeats) is looked at in every stored
    copy and every distinct way it is referenced (file, variable, offset,
    stored size, codec); each is read, decoded and compared byte-for-byte
    with the first copy. Copies of one hash that differ are reported as a
    hash collision (or corruption), naming both places."""
    if version is None:
        return _verify_all(repo, deep=deep)
    targets = [repo.resolve(version)]
    out: dict = {"versions": len(targets)}
    if deep:
        out["deep"] = _verify_deep(repo, targets)
    out.update(_check_versions(repo, targets))
    return out


def _verify_all(repo, *, deep: bool) -> dict:
    """Whole repository: every manifest, every version's data, every branch
    and tag. Does not stop at the first damage: checks all, then raises one
    CorruptionError listing each damaged version and ref, carrying the lists
    (``damaged``, ``intact``, ``damaged_refs``) as attributes."""
    damaged: dict[str, str] = {}           # version id -> first problem found
    removed: list[str] = []                # pruned (and gc'ed) while this ran: not damage
    loaded = []

    def gone(vid: str) -> bool:
        if os.path.lexists(repo.layout.manifest(vid)):
            return False
        removed.append(vid)
        return True
    for vid in repo.version_ids():
        try:
            loaded.append(repo.load_version(vid))
        except NotFoundError:
            gone(vid)
        except CorruptionError as exc:
            if not gone(vid):
                damaged[vid] = str(exc)
    bad_refs = check_refs(repo)
    out: dict = {"versions": len(loaded) + len(damaged)}
    if deep and not damaged and not bad_refs:
        out["deep"] = _verify_deep(repo, loaded)
    nchunks = nbytes = 0
    intact = []
    notes: dict[str, str] = {}
    for v in loaded:
        try:
            res = _check_versions(repo, [v])
        except CorruptionError as exc:
            if not gone(v.id):
                damaged[v.id] = str(exc)
            continue
        intact.append(v.id)
        notes.update(res.get("node_local", {}))
        nchunks += res["chunks"]
        nbytes += res["bytes"]
    if damaged or bad_refs:
        lines = [f"version {vid}: {msg}" for vid, msg in sorted(damaged.items())]
        lines += [f"{ref}: {msg}" for ref, msg in sorted(bad_refs.items())]
        exc = CorruptionError(f"{len(damaged)} damaged version(s), {len(bad_refs)} damaged ref(s), "
                              f"{len(intact)} intact version(s):\n  " + "\n  ".join(lines))
        exc.damaged = sorted(damaged)
        exc.damaged_refs = sorted(bad_refs)
        exc.intact = sorted(intact)
        exc.problems = dict(damaged) | dict(bad_refs)
        exc.removed = sorted(removed)
        raise exc
    out.update(chunks=nchunks, bytes=nbytes, intact=sorted(intact), removed=sorted(removed))
    if notes:
        out["node_local"] = notes
    return out


def check_refs(repo) -> dict[str, str]:
    """Every branch and tag file: its content must be a version id whose
    manifest exists. Returns {"branch NAME" / "tag NAME": problem}."""
    bad: dict[str, str] = {}
    for kind in ("branch", "tag"):
        root = repo.layout.ref_dir(kind)
        for dirpath, _dirs, files in os.walk(root):
            for f in files:
                if f.startswith(".tmp-") or f.endswith(".lock"):
                    continue
                full = os.path.join(dirpath, f)
                name = os.path.relpath(full, root).replace(os.sep, "/")
                key = f"{kind} {name}"
                try:
                    with open(full, "rb") as fh:
                        raw = fh.read()
                except OSError as exc:
                    bad[key] = f"cannot read {full}: {exc}"
                    continue
                try:
                    vid = raw.decode("ascii").strip()
                except UnicodeDecodeError:
                    vid = None
                if vid is None or not is_version_id(vid):
                    bad[key] = f"malformed ref file {full}: {raw[:40]!r} is not a version id"
                elif not os.path.exists(repo.layout.manifest(vid)):
                    bad[key] = (f"dangling ref {full}: version {vid} has no manifest "
                                f"({repo.layout.manifest(vid)})")
    return bad


def _check_versions(repo, targets: list) -> dict:
    """Every chunk and block digest of ``targets``; raises at the first problem."""
    nchunks = nbytes = 0
    notes: dict[str, str] = {}
    for v in targets:
        note = nodelocal.describe(repo.layout, v.id, v.nranks)
        if note is not None:
            notes[v.id] = note         # rebuilt / held on node-local tiers (docs/format.md)
            if not nodelocal.complete_on(repo.layout, v.id, v.nranks):
                continue               # its files are on the nodes, not here: nothing to read
        r = VersionReader(repo.layout, v.manifest)
        try:
            for rank in range(r.nranks):
                for lname, entry in r.index(rank)["leaves"].items():
                    if not entry.chunks:
                        continue      # a packed leaf (format 2): checked below via its block
                    buf = np.empty(entry.nbytes, np.uint8)
                    r.read_chunks(lname, rank, buf, range(len(entry.chunks)))
                    nchunks += len(entry.chunks)
            for name, e in v.providers.items():
                for rank in range(r.nblocks(name)):
                    block = r.block(name, rank)
                    where = f"version {v.id}, provider {name!r}, rank {block['rank']}"
                    if block.get("pack") is not None:
                        r.block_bytes(name, block)        # checks the packed bytes' digest
                    else:
                        entry = r.leaf(name, block["rank"])
                        if entry.nbytes != block["nbytes"]:
                            raise CorruptionError(f"{where}: index has {entry.nbytes} bytes, "
                                                  f"manifest {block['nbytes']}")
                        if digest_of([c.hash for c in entry.chunks]) != block["digest"]:
                            raise CorruptionError(f"{where}: chunk hashes of the index do not "
                                                  f"match the block digest of the manifest")
                    nbytes += block["nbytes"]
        finally:
            r.close()
    return {"chunks": nchunks, "bytes": nbytes} | ({"node_local": notes} if notes else {})

def _verify_deep(repo, targets: list) -> dict:
    """Byte-for-byte comparison of every stored copy / reference of each
    chunk hash used by ``targets`` (see ``verify``)."""
    # (hash, nbytes) -> {place: [(version, rank, leaf, chunk)]}; a place is
    # (file, variable, offset, stored, codec key) — how a reference reads it.
    groups: dict[tuple, dict[tuple, list]] = {}
    codecs_by_key: dict[str, dict] = {}
    wanted: set = set()
    target_ids = {v.id for v in targets}
    everything = targets if len(targets) > 1 else repo.versions()
    if not any(v.id in target_ids for v in everything):
        everything = list(everything) + list(targets)
    meta: dict = {}      # BP5 file -> metadata checksums (checked before ADIOS2 opens it)
    for v in everything:
        r = VersionReader(repo.layout, v.manifest)
        try:
            for rank in range(r.nranks):
                try:
                    idx = r.index(rank)
                except CorruptionError:
                    if v.id in target_ids:
                        raise
                    continue   # another version's damage is that version's report
                for lname, entry in idx["leaves"].items():
                    for k, c in enumerate(entry.chunks):
                        cfg = idx["codecs"][c.codec]
                        ck = codec_key(cfg)
                        codecs_by_key[ck] = cfg
                        key = (c.hash, c.nbytes)
                        place = (idx["files"][c.file], c.var, c.offset, c.stored, ck)
                        if place[0] not in meta:
                            meta[place[0]] = r.bp5_metadata(place[0])
                        groups.setdefault(key, {}).setdefault(place, []).append(
                            (v.id, rank, lname, k))
                        if v.id in target_ids:
                            wanted.add(key)
        finally:
            r.close()
    readers: dict[str, BlockReader] = {}

    def load(place, nbytes) -> np.ndarray:
        rel, var, off, stored, ck = place
        rd = readers.get(rel)
        if rd is None:
            rd = readers[rel] = BlockReader(repo.layout.abs(rel), what="verify --deep: ",
                                            metadata=meta.get(rel))
        raw = np.empty(stored, np.uint8)
        rd.read_into(var, off, raw)
        cfg = codecs_by_key[ck]
        if cfg["id"] == "raw":
            return raw
        return np.frombuffer(get_codec(cfg).decode(raw, nbytes), np.uint8)

    def name(place, refs_):
        vid, rank, lname, k = refs_[0]
        more = f" and {len(refs_) - 1} more reference(s)" if len(refs_) > 1 else ""
        return (f"file {repo.layout.abs(place[0])}, variable {place[1]!r}, offset {place[2]} "
                f"(version {vid}, rank {rank}, leaf {lname!r}, chunk {k}{more})")
    shared = refs_n = copies = nbytes_cmp = 0
    try:
        for key in sorted(wanted):
            places = groups[key]
            nref = sum(len(x) for x in places.values())
            if nref < 2:
                continue
            shared += 1
            refs_n += nref
            h, n = key
            first_place, first = None, None
            for place, refs_ in places.items():
                data = load(place, n)
                copies += 1
                if data.size != n:
                    raise CorruptionError(f"chunk {h} decodes to {data.size} bytes, recorded "
                                          f"{n}: {name(place, refs_)}")
                if first is None:
                    first_place, first = place, data
                    continue
                nbytes_cmp += n
                if not np.array_equal(first, data):
                    pos = int(np.nonzero(first != data)[0][0])
                    raise CorruptionError(
                        f"two stored copies recorded with the same xxh3-128 hash {h} ({n} bytes) "
                        f"differ at byte {pos}: a hash collision or corruption; "
                        f"{name(first_place, places[first_place])} vs {name(place, refs_)}")
            if chunk_hash(first) != h:
                raise CorruptionError(f"checksum mismatch: {name(first_place, places[first_place])}")
    finally:
        for rd in readers.values():
            rd.close()
    return {"shared_hashes": shared, "references": refs_n, "copies_read": copies,
            "bytes_compared": nbytes_cmp}
