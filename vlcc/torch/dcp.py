"""A torch.distributed.checkpoint (DCP) storage plugin: ``dcp.save``,
``dcp.async_save`` and ``dcp.load`` read and write vlcc versions.

    dcp.save(state_dict, storage_writer=vlcc.torch.StorageWriter("runs/llm"))
    dcp.load(state_dict, storage_reader=vlcc.torch.StorageReader("runs/llm", spec="latest"))

Each save is one vlcc version (lineage, branches, tags, dedup against the
previous version and across ranks, checksums). DCP plans which rank writes
which chunk of which tensor; vlcc stores every rank's chunks as per-rank
providers and DCP's own chunk metadata, so ``dcp.load`` reshards onto any
world size (DCP does the N→M mapping from that metadata).

Provider names: ``dcp/t/<fqn>`` (a whole tensor), ``dcp/s/<fqn>/<o0>_<o1>...``
(a shard at those offsets), ``dcp/b/<fqn>`` (a non-tensor value, pickled by DCP),
``dcp/metadata`` (DCP's ``Metadata``, on the coordinator rank; a pickle, as in
DCP's own format, so ``dcp.load`` trusts the repository like a DCP folder). Characters
outside ``[A-Za-z0-9_.-]`` in an fqn become ``_``; ``Metadata.storage_data``
maps every chunk to its provider and rank. Every rank registers every name
(vlcc versions have the same providers on all ranks): a rank that does not
hold a chunk stores an empty array there.

The vlcc collectives of a save run on a private gloo group (or on no group
at all when torch.distributed is not initialized), in the thread that runs
the save (``dcp.async_save`` runs it in a background thread).
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
from typing import Any

from torch.distributed._shard._utils import narrow_tensor_by_index
from torch.distributed.checkpoint.metadata import (BytesStorageMetadata, Metadata, MetadataIndex,
                                                   StorageMeta, TensorStorageMetadata)
from torch.distributed.checkpoint.planner import (LoadItemType, LoadPlan, LoadPlanner, SavePlan,
                                                  SavePlanner, WriteItemType)
from torch.distributed.checkpoint.storage import StorageReader as _Reader
from torch.distributed.checkpoint.storage import StorageWriter as _Writer
from torch.distributed.checkpoint.storage import WriteResult
from torch.futures import Future

import vlcc
from ..comm import protocol
from ..errors import RepositoryError, VlccError
from .comm import resolve_comm
from .tensors import as_numpy, from_numpy
from .union import register_union

METADATA = "dcp/metadata"
_BAD = re.compile(r"[^A-Za-z0-9_.\-]")


def provider_name(index: MetadataIndex, kind: WriteItemType) -> str:
    fqn = _BAD.sub("_", index.fqn)
    if not re.match(r"[A-Za-z0-9_]", fqn[:1]):
        fqn = "_" + fqn
    if kind == WriteItemType.BYTE_IO:
        return f"dcp/b/{fqn}"
    if kind == WriteItemType.SHARD:
        return f"dcp/s/{fqn}/" + "_".join(str(int(o)) for o in (index.offset or (0,)))
    return f"dcp/t/{fqn}"


def _is_repository(path: str | os.PathLike) -> bool:
    try:
        vlcc.Repository(path)
        return True
    except (RepositoryError, OSError):
        return False


def _global_metadata(plans: list[SavePlan]) -> Metadata:
    """DCP's metadata rebuilt from every rank's final plan (as
    ``create_default_global_save_plan`` builds it), for planners that keep none."""
    md: dict[str, Any] = {}
    planner_data: dict = {}
    for plan in plans:
        if isinstance(plan.planner_data, dict):
            planner_data.update(plan.planner_data)
        for item in plan.items:
            if item.type == WriteItemType.BYTE_IO:
                md[item.index.fqn] = BytesStorageMetadata()
            else:
                td = item.tensor_data
                md.setdefault(item.index.fqn, TensorStorageMetadata(
                    properties=td.properties, size=td.size, chunks=[])).chunks.append(td.chunk)
    return Metadata(md, planner_data=planner_data or None)


class StorageWriter(_Writer):
    """DCP storage writer into the vlcc repository ``path``: one version per
    save on ``branch``, with ``message``. ``group``: as for
    ``vlcc.torch.Checkpointer`` (default: the world group when torch.distributed
    is initialized). ``**options`` go to ``vlcc.Checkpointer`` (chunk_size, dedup, ...)."""

    def __init__(self, path: str | os.PathLike, branch: str = "main", message: str | None = None,
                 *, step: int | None = None, attrs: dict | None = None, group: Any = None,
                 **options: Any):
        super().__init__()
        self.path = os.fspath(path)
        self.branch, self.message, self.step, self.attrs = branch, message, step, attrs
        self.group, self.options = group, options
        self.is_coordinator = True
        self.version: vlcc.Version | None = None     # the version of the last save

    # -- DCP protocol --------------------------------------------------------------
    def reset(self, checkpoint_id: str | os.PathLike | None = None) -> None:
        if checkpoint_id is not None:
            self.path = os.fspath(checkpoint_id)

    def set_up_storage_writer(self, is_coordinator: bool, *args: Any, **kwargs: Any) -> None:
        self.is_coordinator = is_coordinator

    def storage_meta(self) -> StorageMeta | None:
        return StorageMeta(checkpoint_id=self.path)

    def prepare_local_plan(self, plan: SavePlan) -> SavePlan:
        return plan

    def prepare_global_plan(self, plans: list[SavePlan]) -> list[SavePlan]:
        return plans

    def write_data(self, plan: SavePlan, planner: SavePlanner) -> Future[list[WriteResult]]:
        """Collective over the ranks (all of them call it): capture this rank's
        items and commit one vlcc version; the future is complete on return."""
        comm = resolve_comm(self.group)
        mine: dict[str, Any] = {}
        results = []

        def items():
            descs = []
            for item in plan.items:
                data = planner.resolve_data(item)
                if item.type == WriteItemType.BYTE_IO:
                    name = provider_name(item.index, item.type)
                    raw = data.getvalue() if isinstance(data, io.BytesIO) else bytes(data)
                    mine[name] = raw
                    descs.append((name, "bytes", None))
                    size = len(raw)
                else:
                    name = provider_name(item.index, item.type)
                    t = data.detach()
                    if t.device.type != "cpu":
                        t = t.to("cpu")
                    t = t.contiguous()
                    arr = as_numpy(t)
                    mine[name] = arr
                    descs.append((name, "tensor", arr.dtype.str))
                    size = arr.nbytes
                results.append(WriteResult(index=item.index, size_in_bytes=size,
                                           storage_data=(name, comm.rank)))
            return descs, plan
        everyone = protocol.allgather(comm, items)   # small: item descriptions only

        def metadata():
            md = getattr(planner, "metadata", None) if self.is_coordinator else None
            if self.is_coordinator and not isinstance(md, Metadata):
                md = _global_metadata([p for _, p in everyone])
            if md is not None:
                storage = {}
                for rank, (ds, p) in enumerate(everyone):
                    for item, (name, _, _) in zip(p.items, ds):
                        storage[item.index] = (name, rank)
                md = dataclasses.replace(md, storage_data=storage,
                                         storage_meta=md.storage_meta or self.storage_meta())
            return md
        md = protocol.agree(comm, metadata)     # the coordinator's failure is everyone's

        # DCP's Metadata is a tree of torch dataclasses that only pickle can
        # hold (DCP's own FileSystemWriter pickles it too): the one pickled
        # value of a DCP version, so its repository is trusted like a DCP folder.
        ck = vlcc.Checkpointer(self.path, comm=comm, branch=self.branch, mode="sync",
                               **({"allow_pickle": True} | self.options))
        try:
            register_union(ck, comm, mine)
            ck.register(METADATA, vlcc.ValueProvider(get=lambda: md))
            self.version = ck.checkpoint(step=self.step, message=self.message or "dcp.save",
                                         attrs=dict(self.attrs or {}) | {"dcp": True})
        finally:
            ck.close()
        fut: Future = Future()
        fut.set_result(results)
        return fut

    def finish(self, metadata: Metadata, results: list[list[WriteResult]]) -> None:
        # The version was committed collectively in write_data (atomic: a
        # failure on any rank leaves nothing visible); nothing left to do.
        pass

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: str | os.PathLike) -> bool:
        return _is_repository(checkpoint_id) or not os.path.exists(checkpoint_id)


class StorageReader(_Reader):
    """DCP storage reader of version ``spec`` (``"latest"``, an id, ``"tag:NAME"``,
    ``"branch:NAME"``) of the vlcc repository ``path``. Works on any world size."""

    def __init__(self, path: str | os.PathLike, spec: str = "latest"):
        super().__init__()
        self.path, self.spec = os.fspath(path), spec
        self.version: vlcc.Version | None = None
        self.metadata: Metadata | None = None

    def reset(self, checkpoint_id: str | os.PathLike | None = None) -> None:
        if checkpoint_id is not None:
            self.path = os.fspath(checkpoint_id)
        self.version = self.metadata = None

    def _resolve(self) -> vlcc.Version:
        if self.version is None:
            repo = vlcc.Repository(self.path)
            v = repo.resolve(self.spec)
            if METADATA not in v.providers:
                raise VlccError(f"version {v.id} of {self.path} was not written by dcp.save "
                                f"(no {METADATA!r} provider)")
            self.version = v
        return self.version

    def read_metadata(self, *args: Any, **kwargs: Any) -> Metadata:
        v = self._resolve()
        if self.metadata is None:
            repo = vlcc.Repository(self.path)
            for r in range(v.nranks):        # held by the coordinator rank of the save
                md = repo.read(v, METADATA, rank=r, allow_pickle=True)   # see write_data
                if md is not None:
                    break
            self.metadata = md
        return self.metadata

    def set_up_storage_reader(self, metadata: Metadata, is_coordinator: bool, *args: Any,
                              **kwargs: Any) -> None:
        self.metadata = metadata

    def prepare_local_plan(self, plan: LoadPlan) -> LoadPlan:
        return plan

    def prepare_global_plan(self, plans: list[LoadPlan]) -> list[LoadPlan]:
        return plans

    def read_data(self, plan: LoadPlan, planner: LoadPlanner) -> Future[None]:
        v = self._resolve()
        repo = vlcc.Repository(self.path)
        storage = self.metadata.storage_data
        cache: dict[tuple[str, int], Any] = {}

        def stored(idx: MetadataIndex):
            if idx not in storage:
                raise VlccError(f"version {v.id} of {self.path} has no chunk {idx.fqn!r} "
                                f"at offset {tuple(idx.offset or ())}")
            key = tuple(storage[idx])
            if key not in cache:
                cache[key] = repo.read(v, key[0], rank=key[1])
            return cache[key]

        for req in plan.items:
            if req.type == LoadItemType.BYTE_IO:
                planner.load_bytes(req, io.BytesIO(stored(req.storage_index)))
                continue
            md = self.metadata.state_dict_metadata[req.storage_index.fqn]
            chunk = md.chunks[req.storage_index.index] if req.storage_index.index is not None \
                else None
            arr = stored(req.storage_index)
            src = from_numpy(arr, md.properties.dtype)
            if chunk is not None:
                src = src.reshape(tuple(chunk.sizes))
            src = narrow_tensor_by_index(src, req.storage_offsets, req.lengths)
            target = planner.resolve_tensor(req).detach()
            if target.size() != src.size():
                raise VlccError(f"chunk {req.storage_index.fqn!r}: stored size {tuple(src.size())}, "
                                f"requested {tuple(target.size())}")
            target.copy_(src)
            planner.commit_tensor(req, target)
        fut: Future = Future()
        fut.set_result(None)
        return fut

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: str | os.PathLike) -> bool:
        return _is_repository(checkpoint_id)


__all__ = ["StorageWriter", "StorageReader", "provider_name"]
