"""DeepSpeed: store ``engine.save_checkpoint`` as vlcc versions.

    engine, *_ = deepspeed.initialize(...)
    vlcc.torch.deepspeed.attach(engine, "runs/ds")
    engine.save_checkpoint("ckpt", tag="step100")    # one vlcc version, vlcc tag "step100"
    engine.load_checkpoint("ckpt", tag="step100")    # model and optimizer bit-exact

DeepSpeed picks its checkpoint engine from the config, so ``attach`` replaces
``engine.checkpoint_engine`` after ``deepspeed.initialize``. One
``save_checkpoint`` → ``create`` (all ranks) → ``save(state_dict, path)`` per
file (rank 0 the model states, each rank its ZeRO partition) → ``commit``
(all ranks): the files of all ranks become one vlcc version in ``commit``.

Provider names: ``ds/<file>/<key.path>`` for every tensor of a file's state
dict (e.g. ``ds/mp_rank_00_model_states.pt/module.fc.weight``) and
``dsmeta/<file>`` for the file's structure with the other values (a pickle,
as DeepSpeed's own files are). DeepSpeed
finds files with ``glob``/``os.path.exists`` under ``save_dir/tag``: each
rank leaves there a small JSON stub per file naming the vlcc version, which
``load`` follows.

``mode="async"`` (default): ``commit`` returns after the capture (tensors are
copied into vlcc's memory tier, DeepSpeed's clone is skipped); the version
becomes durable in the background. The vlcc tag is set at the next
collective call (next save, ``load``, ``wait()``); a ``load`` that follows a
save in the same process waits for it first (all ranks call ``load`` for the
model states file).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import numpy as np
import torch

import vlcc
from ..errors import NotFoundError, RefExistsError, VlccError
from .comm import resolve_comm
from .tensors import as_numpy, dtype_name, from_numpy
from .union import register_union

try:   # the base class when deepspeed is installed; attach() needs it anyway
    from deepspeed.runtime.checkpoint_engine.checkpoint_engine import CheckpointEngine as _Base
except ImportError:   # pragma: no cover - deepspeed missing: a plain base keeps imports working
    _Base = object

STUB = "vlcc-deepspeed-stub"
_BAD = re.compile(r"[^A-Za-z0-9_.\-]")


class _Tensor:
    """Placeholder for a tensor in a stored structure."""

    def __init__(self, name: str, dtype: str, shape: tuple):
        self.name, self.dtype, self.shape = name, dtype, shape


def _clean(part: Any) -> str:
    s = _BAD.sub("_", str(part))
    return s if s and re.match(r"[A-Za-z0-9_]", s[0]) else "_" + s


def flatten(obj: Any, prefix: str) -> tuple[Any, dict[str, np.ndarray]]:
    """Split a state dict into (structure with placeholders, tensors by provider name)."""
    tensors: dict[str, np.ndarray] = {}

    def walk(x, path):
        if isinstance(x, torch.Tensor):
            name = f"{prefix}/" + (".".join(_clean(p) for p in path) or "_")
            base, k = name, 1
            while name in tensors:
                name, k = f"{base}-{k}", k + 1
            t = x.detach()
            t = (t.to("cpu") if t.device.type != "cpu" else t).contiguous()
            tensors[name] = as_numpy(t)
            return _Tensor(name, dtype_name(x.dtype), tuple(x.shape))
        if isinstance(x, dict):
            return type(x)((k, walk(v, path + [k])) for k, v in x.items()) \
                if type(x) is not dict else {k: walk(v, path + [k]) for k, v in x.items()}
        if isinstance(x, list):
            return [walk(v, path + [i]) for i, v in enumerate(x)]
        if isinstance(x, tuple) and not hasattr(x, "_fields"):
            return tuple(walk(v, path + [i]) for i, v in enumerate(x))
        return x
    return walk(obj, []), tensors


def unflatten(tree: Any, load) -> Any:
    if isinstance(tree, _Tensor):
        return load(tree)
    if isinstance(tree, dict):
        return type(tree)((k, unflatten(v, load)) for k, v in tree.items()) \
            if type(tree) is not dict else {k: unflatten(v, load) for k, v in tree.items()}
    if isinstance(tree, list):
        return [unflatten(v, load) for v in tree]
    if isinstance(tree, tuple) and not hasattr(tree, "_fields"):
        return tuple(unflatten(v, load) for v in tree)
    return tree


class VlccCheckpointEngine(_Base):
    """A DeepSpeed ``CheckpointEngine`` writing vlcc versions to ``path``."""

    def __init__(self, path: str | os.PathLike, engine: Any = None, *, mode: str = "async",
                 group: Any = None, branch: str = "main", **options: Any):
        self.name = "VlccCheckpointEngine"
        self.path = os.path.abspath(os.fspath(path))
        self.ds_engine = engine
        # dsmeta/<file> holds DeepSpeed's own objects (OrderedDicts, enums, configs,
        # tensor placeholders) that only pickle can store: a DeepSpeed repository
        # is trusted like DeepSpeed's torch.load(weights_only=False) of its files.
        self.ck = vlcc.Checkpointer(self.path, comm=resolve_comm(group), branch=branch, mode=mode,
                                    **({"allow_pickle": True} | options))
        self.comm = self.ck.comm
        self._files: dict[str, Any] = {}       # path -> state dict, for the checkpoint being saved
        self._info: Any = None
        self._tags: list[tuple[str, str]] = []  # (tag, version id) set once committed
        self.last_version: vlcc.Version | None = None

    # -- DeepSpeed CheckpointEngine interface -----------------------------------------
    def create(self, info: Any) -> None:
        self._settle()
        self._files, self._info = {}, info

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        os.makedirs(path, exist_ok=exist_ok)

    def preserves_storage_sharing(self) -> bool:
        # DeepSpeed would clone every tensor for torch.save; vlcc copies at capture itself
        return False

    def save(self, state_dict: Any, path: str) -> None:
        if self._info is None:
            raise VlccError("VlccCheckpointEngine.save called outside create()/commit()")
        self._files[os.fspath(path)] = state_dict

    def commit(self, info: Any) -> bool:
        """Collective (every rank calls it): capture every rank's files into one version."""
        tag = str(info.tag)
        mine: dict[str, Any] = {}
        stubs = {}
        for path, sd in self._files.items():
            rel = os.path.relpath(path, os.path.join(info.save_dir, tag))
            key = _clean(rel.replace(os.sep, "__"))
            tree, tensors = flatten(sd, f"ds/{key}")
            mine.update(tensors)
            mine[f"dsmeta/{key}"] = tree
            stubs[path] = key
        for name in list(self.ck.providers):
            self.ck.unregister(name)
        register_union(self.ck, self.comm, mine)
        step = getattr(self.ds_engine, "global_steps", None)
        v = self.ck.checkpoint(step=None if step is None else int(step), message=f"deepspeed {tag}",
                               attrs={"deepspeed_tag": tag})
        for path, key in stubs.items():
            tmp = f"{path}.tmp{os.getpid()}"
            with open(tmp, "w") as f:
                json.dump({STUB: 1, "repository": self.path, "version": v.id, "file": key,
                           "rank": self.comm.rank}, f)
            os.replace(tmp, path)
        self._tags.append((tag, v.id))
        self.last_version = v
        self._files, self._info = {}, None
        if self.ck.mode == "sync":
            self._settle()
        return True

    def load(self, path: str, map_location: Any = None) -> Any:
        with open(path) as f:
            try:
                stub = json.load(f)
            except (UnicodeDecodeError, json.JSONDecodeError):
                stub = None
        if not isinstance(stub, dict) or STUB not in stub:
            # a file written by torch.save (a checkpoint from before attach)
            return torch.load(path, map_location=map_location, weights_only=False)
        if any(vid == stub["version"] for _, vid in self._tags) or self.ck.stats["pending"]:
            self._settle()      # collective: see the module docstring
        repo = vlcc.Repository(stub["repository"])
        try:
            v = repo.resolve(stub["version"])
        except NotFoundError:
            raise NotFoundError(f"{path} names vlcc version {stub['version']} of "
                                f"{stub['repository']}, which is not committed (saved asynchronously "
                                f"by another engine that has not called wait() or close(), or "
                                f"lost in a crash before it was durable)") from None
        key, rank = stub["file"], stub["rank"]
        tree = repo.read(v, f"dsmeta/{key}", rank=rank, allow_pickle=True)   # see __init__

        def load_tensor(ph: _Tensor) -> torch.Tensor:
            arr = repo.read(v, ph.name, rank=rank)
            t = from_numpy(arr.reshape(ph.shape), getattr(torch, ph.dtype))
            if map_location is not None and not callable(map_location):
                t = t.to(map_location)
            return t
        return unflatten(tree, load_tensor)

    # -- vlcc additions ------------------------------------------------------------------
    def _settle(self) -> None:
        """Collective: commit pending versions, then set their vlcc tags."""
        self.ck.wait()
        tags, self._tags = self._tags, []
        for tag, vid in tags:
            try:
                self.ck.tag(tag, vid)
            except RefExistsError:
                # DeepSpeed may reuse a tag; vlcc tags are fixed: the stub names the version
                pass
            except vlcc.VlccError as exc:   # e.g. a tag name vlcc does not accept
                if "invalid" not in str(exc).lower():
                    raise

    def wait(self) -> None:
        """Collective: block until every saved checkpoint is durable and tagged."""
        self._settle()

    def close(self) -> None:
        self._settle()
        self.ck.close()

    def is_data_parallel_writer(self, dp_rank: int) -> bool:
        return dp_rank == 0

    def is_decoupled(self) -> bool:
        return False

    def cleanup(self) -> None:
        pass


def attach(engine: Any, path: str | os.PathLike, **kwargs: Any) -> VlccCheckpointEngine:
    """Make ``engine.save_checkpoint``/``load_checkpoint`` use the vlcc repository
    ``path`` (collective over the engine's ranks). ``kwargs``: ``mode``
    (``"async"``/``"sync"``), ``group``, ``branch`` and ``vlcc.Checkpointer`` options."""
    if not hasattr(engine, "save_checkpoint") or not hasattr(engine, "checkpoint_engine"):
        raise VlccError(f"attach: {type(engine).__name__} is not a DeepSpeed engine "
                        f"(no save_checkpoint/checkpoint_engine)")
    ce = VlccCheckpointEngine(path, engine, **kwargs)
    engine.checkpoint_engine = ce
    return ce


__all__ = ["attach", "VlccCheckpointEngine"]
