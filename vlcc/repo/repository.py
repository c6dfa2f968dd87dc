"""Repository: non-collective access to a vlcc repository (no MPI needed):
list and resolve versions, read arrays, verify checksums. The Checkpointer
uses it on rank 0 for everything that touches metadata."""

from __future__ import annotations

import os
import warnings
from typing import Iterable

import numpy as np

from ..errors import CorruptionError, FormatVersionError, NotFoundError, VlccError
from . import refs
from .layout import Layout, is_version_id, read_config
from .manifest import Version, load_manifest
from ..encode import get_codec
from ..io.bp5 import BlockReader
from ..redundancy.dedup import codec_key
from ..redundancy.hashing import chunk_hash, digest_of

class Repository:
    """A vlcc repository on disk, opened for inspection.

    >>> repo = Repository("runs/heat")
    >>> v = repo.log()[0]; u = repo.read(v, "heat/u")
    """

    def __init__(self, path: str | os.PathLike):
        self.layout = Layout(os.fspath(path))
        self.path = self.layout.root
        self.config = read_config(self.layout)
        self._cache: dict[str, Version] = {}

    def __repr__(self) -> str:
        return f"vlcc.Repository({self.path!r})"

    # -- versions -----------------------------------------------------------
    def _load(self, vid: str) -> Version:
        v = self._cache.get(vid)
        if v is None:
            doc = load_manifest(self.layout.manifest(vid), vid, self.path)
            v = self._cache[vid] = Version.from_manifest(doc)
        return v

    def version_ids(self) -> list[str]:
        try:
            names = os.listdir(self.layout.versions_dir)
        except FileNotFoundError:
            return []
        return [n[:-5] for n in names if n.endswith(".json") and is_version_id(n[:-5])]

    def versions(self) -> list[Version]:
        """Every readable version, newest first. A damaged manifest, or one
        written by a newer vlcc, is skipped with a warning (``verify`` reports
        it as an error; resolving it by id raises)."""
        out = []
        for vid in self.version_ids():
            try:
                out.append(self._load(vid))
            except (CorruptionError, FormatVersionError) as exc:
                warnings.warn(f"skipping version {vid}: {exc}", stacklevel=2)
        out.sort(key=lambda v: (v.time, v.id), reverse=True)
        return out

    def branches(self) -> dict[str, str]:
        return {n: self.branch_head(n) for n in refs.list_refs(self.layout, "branch")}

    def tags(self) -> dict[str, str]:
        return refs.list_refs(self.layout, "tag")

    def branch_head(self, name: str) -> str | None:
        """The newest version of a branch. The ref file is moved right after a
        commit; if a crash fell between the two, the committed child is found
        by its parent link and taken as the head (the manifest is the commit)."""
        vid = refs.read_ref(self.layout, "branch", name)
        children: dict[str, list[Version]] = {}
        for v in self.versions():
            if v.branch == name:
                children.setdefault(v.parent, []).append(v)
        if vid is None:
            roots = children.get(None, [])
            if not roots:
                return None
            vid = max(roots, key=lambda v: (v.time, v.id)).id
        seen = set()
        while vid in children and vid not in seen:
            seen.add(vid)
            vid = max(children[vid], key=lambda v: (v.time, v.id)).id
        return vid

    def resolve(self, spec: "Version | str | None" = None, branch: str | None = None) -> Version:
        """A Version from an id (or unique prefix of ≥4 digits), ``latest``
        (newest of ``branch``, or of the whole repository), ``tag:NAME``,
        ``branch:NAME``, or a bare branch/tag name."""
        if isinstance(spec, Version):
            return self._load(spec.id)
        if spec is None or spec == "latest":
            if branch is not None:
                vid = self.branch_head(branch)
                if vid is None:
                    raise NotFoundError(f"no version on branch {branch!r} in repository {self.path}")
                return self._load(vid)
            vs = self.versions()
            if not vs:
                raise NotFoundError(f"repository {self.path} has no versions")
            return vs[0]
        if not isinstance(spec, str):
            raise VlccError(f"version must be a Version or a string, not {type(spec).__name__}")
        if spec.startswith("tag:"):
            return self._load(refs.require_ref(self.layout, "tag", spec[4:]))
        if spec.startswith("branch:"):
            name = spec[7:]
            refs.require_ref(self.layout, "branch", name)
            return self._load(self.branch_head(name))
        if is_version_id(spec):
            return self._load(spec)
        if _ref_ok(spec):
            if refs.read_ref(self.layout, "branch", spec):
                return self._load(self.branch_head(spec))
            tag = refs.read_ref(self.layout, "tag", spec)
            if tag:
                return self._load(tag)
        if len(spec) >= 4 and all(c in "0123456789abcdef" for c in spec):
            hits = [vid for vid in self.version_ids() if vid.startswith(spec)]
            if len(hits) == 1:
                return self._load(hits[0])
            if len(hits) > 1:
                raise NotFoundError(f"version prefix {spec!r} is ambiguous in {self.path}: "
                                    f"{', '.join(sorted(hits)[:5])}")
        raise NotFoundError(f"unknown version {spec!r} in repository {self.path} "
                            f"(use an id, 'latest', 'tag:NAME' or 'branch:NAME')")

    def log(self, branch: str | None = None) -> list[Version]:
        """Versions newest first: all of them, or the lineage of ``branch``
        (its head and the head's ancestors, as ``git log``)."""
        if branch is None:
            return self.versions()
        vid = self.branch_head(branch)
        if vid is None:
            refs.require_ref(self.layout, "branch", branch)  # unknown branch: NotFoundError
            return []
        out = []
        while vid is not None:
            try:
                v = self._load(vid)
            except NotFoundError:
                if not out:
                    raise
                break   # the rest of the lineage was pruned (vlcc prune)
            out.append(v)
            vid = v.parent
        return out

    # -- data ---------------------------------------------------------------
    def read(self, version: "Version | str", name: str, rank: int | None = None, *,
             box: "tuple[tuple[int, ...], tuple[int, ...]] | None" = None):
        """A provider's stored content: the global array of a distributed
        provider, rank ``rank``'s array/value of a per-rank one (``rank`` may be
        omitted when all ranks stored the same bytes). ``box=(offset, shape)``
        reads only that sub-box of a distributed provider (only the chunks it
        needs), so arrays larger than memory can be streamed."""
        from ..restore.reader import VersionReader
        v = self.resolve(version)
        r = VersionReader(self.layout, v.manifest)
        try:
            e = r.entry(name)
            if e["kind"] == "derived":
                raise VlccError(f"provider {name!r} of version {v.id} is derived (recipe "
                                f"{e.get('recipe')!r} of {e.get('inputs')!r}): no bytes are stored; "
                                f"read its inputs and recompute it, or restore with a Checkpointer")
            if e["kind"] == "distributed":
                gshape = tuple(e["global_shape"])
                off, shape = ((0,) * len(gshape), gshape) if box is None else map(tuple, box)
                if len(off) != len(gshape) or len(shape) != len(gshape) or any(
                        o < 0 or n < 0 or o + n > g for o, n, g in zip(off, shape, gshape)):
                    raise VlccError(f"box {box!r} does not lie inside provider {name!r} of "
                                    f"version {v.id} (global shape {gshape})")
                out = np.empty(shape, np.dtype(e["dtype"]))
                return r.read_box(name, out, off) if out.size else out
            if box is not None:
                raise VlccError(f"box= applies to distributed providers; {name!r} of version "
                                f"{v.id} is {e['kind']!r}")
            nblocks = len(e["blocks"])
            if rank is None:
                if not e.get("replicated") and nblocks > 1:
                    raise VlccError(f"provider {name!r} of version {v.id} differs per rank "
                                    f"(written on {nblocks} ranks): pass rank=0..{nblocks - 1}")
                rank = 0
            if not 0 <= rank < nblocks:
                raise VlccError(f"provider {name!r} of version {v.id} has ranks 0..{nblocks - 1}, "
                                f"not {rank}")
            if e["kind"] == "value":
                return r.read_value(name, rank, nblocks)
            out = np.empty(tuple(e["blocks"][rank]["shape"]), np.dtype(e["dtype"]))
            return r.read_array(name, out, rank, nblocks)
        finally:
            r.close()

    def verify(self, version: "Version | str | None" = None, *, all_versions: bool | None = None,
               deep: bool = False) -> dict:
        """Check every checksum (manifests, indexes, every chunk, block
        digests) of one version or, when ``version`` is None, of all. Raises
        CorruptionError at the first problem, naming version, provider, rank
        and file. Returns counts.

        ``deep``: do not take the chunk hash as proof of identity (docs/format.md,
        section 10, "Hash collisions"). Every chunk hash referenced from several
        places (versions, ranks, leaves, repeats) is looked at in every stored
        copy and every distinct way it is referenced (file, variable, offset,
        stored size, codec); each is read, decoded and compared byte-for-byte
        with the first copy. Copies of one hash that differ are reported as a
        hash collision (or corruption), naming both places."""
        from ..restore.reader import VersionReader
        if version is None:
            for vid in self.version_ids():   # damaged manifests are errors here
                self._load(vid)
            targets = self.versions()
        else:
            targets = [self.resolve(version)]
        out: dict = {"versions": len(targets)}
        if deep:
            out["deep"] = self._verify_deep(targets)
        nchunks = nbytes = 0
        for v in targets:
            r = VersionReader(self.layout, v.manifest)
            try:
                for rank in range(len(v.manifest["ranks"])):
                    for lname, entry in r.index(rank)["leaves"].items():
                        buf = np.empty(entry["nbytes"], np.uint8)
                        r.read_chunks(lname, rank, buf, range(len(entry["chunks"])))
                        nchunks += len(entry["chunks"])
                for name, e in v.providers.items():
                    for block in e["blocks"]:
                        where = f"version {v.id}, provider {name!r}, rank {block['rank']}"
                        if block.get("pack") is not None:
                            r.block_bytes(name, block)        # checks the packed bytes' digest
                        else:
                            entry = r.index(block["rank"])["leaves"].get(name)
                            if entry is None:
                                raise CorruptionError(f"{where}: missing from the rank index")
                            if entry["nbytes"] != block["nbytes"]:
                                raise CorruptionError(f"{where}: index has {entry['nbytes']} bytes, "
                                                      f"manifest {block['nbytes']}")
                            if digest_of([c[5] for c in entry["chunks"]]) != block["digest"]:
                                raise CorruptionError(f"{where}: chunk hashes of the index do not "
                                                      f"match the block digest of the manifest")
                        nbytes += block["nbytes"]
            finally:
                r.close()
        out.update(chunks=nchunks, bytes=nbytes)
        return out

    def _verify_deep(self, targets: list[Version]) -> dict:
        """Byte-for-byte comparison of every stored copy / reference of each
        chunk hash used by ``targets`` (see ``verify``)."""
        from ..restore.reader import VersionReader
        # (hash, nbytes) -> {place: [(version, rank, leaf, chunk)]}; a place is
        # (file, variable, offset, stored, codec key) — how a reference reads it.
        groups: dict[tuple, dict[tuple, list]] = {}
        codecs_by_key: dict[str, dict] = {}
        wanted: set = set()
        target_ids = {v.id for v in targets}
        everything = targets if len(targets) > 1 else self.versions()
        if not any(v.id in target_ids for v in everything):
            everything = list(everything) + list(targets)
        for v in everything:
            r = VersionReader(self.layout, v.manifest)
            try:
                for rank in range(len(v.manifest["ranks"])):
                    try:
                        idx = r.index(rank)
                    except CorruptionError:
                        if v.id in target_ids:
                            raise
                        continue   # another version's damage is that version's report
                    for lname, entry in idx["leaves"].items():
                        for k, c in enumerate(entry["chunks"]):
                            cfg = idx["codecs"][c[6]]
                            ck = codec_key(cfg)
                            codecs_by_key[ck] = cfg
                            key = (c[5], c[4])
                            place = (idx["files"][c[0]], c[1], c[2], c[3], ck)
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
                rd = readers[rel] = BlockReader(self.layout.abs(rel), what="verify --deep: ")
            raw = np.empty(stored, np.uint8)
            rd.read_into(var, off, raw)
            cfg = codecs_by_key[ck]
            if cfg["id"] == "raw":
                return raw
            return np.frombuffer(get_codec(cfg).decode(raw, nbytes), np.uint8)

        def name(place, refs_):
            vid, rank, lname, k = refs_[0]
            more = f" and {len(refs_) - 1} more reference(s)" if len(refs_) > 1 else ""
            return (f"file {self.layout.abs(place[0])}, variable {place[1]!r}, offset {place[2]} "
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


def _ref_ok(name: str) -> bool:
    try:
        refs.check_ref_name(name, "ref")
        return True
    except VlccError:
        return False


def ids(versions: Iterable[Version]) -> list[str]:
    return [v.id for v in versions]
