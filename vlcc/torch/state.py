"""Provider names of a torch training state, and how each part is captured
and put back.

Names (every one readable with ``vlcc.Repository.read(version, name)``):

=============================  ====================================================
``model/<key>``                 each tensor of ``model.state_dict()`` (parameters and
                                persistent buffers), e.g. ``model/fc1.weight``
``optim/state/<i>/<key>``       tensor state of parameter ``i`` (index in
                                ``optimizer.state_dict()``), e.g. ``optim/state/0/exp_avg``
``optim/param_groups``          value: the optimizer's param_groups (hyper-parameters)
``optim/scalars``               value: non-tensor per-parameter state ``{i: {key: v}}``
``scheduler``                   value: ``scheduler.state_dict()``
``rng``                         value: torch (CPU and CUDA), numpy and python RNG states
``extra``                       value: the ``extra`` dict (entries with ``state_dict()``
                                are stored through it)
``torch/meta``                  value: torch dtypes of the stored tensors and the layout version
=============================  ====================================================

Tensors whose dtype numpy lacks (bfloat16, float8) are stored as
integers of the same width (uint8, int16, int32, int64); ``torch/meta["dtypes"]`` names the real dtype.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from ..errors import MissingProviderError, ShapeMismatchError
from ..repo.manifest import stored_entry
from .tensors import as_numpy, dtype_name, from_numpy, storage_dtype

LAYOUT = 1
MODEL, OPTIM_STATE = "model/", "optim/state/"
PARAM_GROUPS, SCALARS, SCHEDULER, RNG, EXTRA, META = (
    "optim/param_groups", "optim/scalars", "scheduler", "rng", "extra", "torch/meta")


def model_tensors(model: torch.nn.Module | None) -> dict[str, torch.Tensor]:
    if model is None:
        return {}
    return {MODEL + k: v for k, v in model.state_dict(keep_vars=True).items()
            if isinstance(v, torch.Tensor)}


def model_extra_state(model: torch.nn.Module | None) -> dict[str, Any]:
    if model is None:
        return {}
    return {k: v for k, v in model.state_dict().items() if not isinstance(v, torch.Tensor)}


def optim_tensors(optimizer: torch.optim.Optimizer | None) -> dict[str, torch.Tensor]:
    if optimizer is None:
        return {}
    out = {}
    for i, st in optimizer.state_dict()["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                out[f"{OPTIM_STATE}{i}/{k}"] = v
    return out


def optim_scalars(optimizer: torch.optim.Optimizer | None) -> dict:
    if optimizer is None:
        return {}
    # str keys: a plain value encoding may allow only those (optimizer_state_dict
    # turns them back into ints)
    return {str(i): {k: v for k, v in st.items() if not isinstance(v, torch.Tensor)}
            for i, st in optimizer.state_dict()["state"].items()}


def param_groups(optimizer: torch.optim.Optimizer) -> list[dict]:
    return optimizer.state_dict()["param_groups"]


def rng_state() -> dict:
    st = {"torch": torch.get_rng_state().numpy().copy(),
          "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        st["cuda"] = [s.numpy().copy() for s in torch.cuda.get_rng_state_all()]
    return st


def set_rng_state(st: dict) -> None:
    torch.set_rng_state(torch.from_numpy(np.array(st["torch"], dtype=np.uint8)))
    # tuples may come back as lists from a plain value encoding: the setters want tuples
    np.random.set_state(tuple(st["numpy"]))
    version, internal, gauss = st["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in st and torch.cuda.is_available():
        n = min(len(st["cuda"]), torch.cuda.device_count())
        for d in range(n):
            torch.cuda.set_rng_state(torch.from_numpy(np.array(st["cuda"][d], dtype=np.uint8)), d)


def capture_extra(extra: dict | None) -> dict:
    if not extra:
        return {}
    return {k: (v.state_dict() if callable(getattr(v, "state_dict", None)) else v)
            for k, v in extra.items()}


def restore_extra(extra: dict, stored: dict) -> None:
    for k, v in stored.items():
        cur = extra.get(k)
        if cur is not None and callable(getattr(cur, "load_state_dict", None)):
            cur.load_state_dict(v)
        else:
            extra[k] = v


_TENSOR = "__torch_tensor__"


def to_plain(obj: Any) -> Any:
    """``obj`` with every torch tensor replaced by ``{"__torch_tensor__": numpy
    copy, "dtype": name}`` and int dict keys kept as they are: values vlcc.torch
    stores are plain containers (dict, list, tuple) of numpy arrays, str, int,
    float, bool, None and bytes, which need no pickle (the safe value encoding)."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu()
        return {_TENSOR: as_numpy(t).copy(), "dtype": dtype_name(t.dtype)}
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if type(obj) is tuple:
        return tuple(to_plain(v) for v in obj)
    if isinstance(obj, (list, tuple)):          # lists, list subclasses, named tuples
        return [to_plain(v) for v in obj]
    return obj


def from_plain(obj: Any) -> Any:
    """The inverse of :func:`to_plain`: tensors come back as CPU tensors of
    their dtype (on their own copy of the bytes)."""
    if isinstance(obj, dict):
        if _TENSOR in obj and set(obj) == {_TENSOR, "dtype"}:
            a = np.array(obj[_TENSOR], copy=True)
            return from_numpy(a, getattr(torch, obj["dtype"]))
        return {k: from_plain(v) for k, v in obj.items()}
    if type(obj) is tuple:
        return tuple(from_plain(v) for v in obj)
    if isinstance(obj, (list, tuple)):
        return [from_plain(v) for v in obj]
    return obj


def meta(tensors: dict[str, torch.Tensor]) -> dict:
    return {"layout": LAYOUT, "torch": str(torch.__version__),   # a str subclass: stored as str
            "dtypes": {n: dtype_name(t.dtype) for n, t in tensors.items()}}


def _stored_shape(e: dict) -> tuple:
    """The tensor's shape: a split replica (``replicated=True``) is a
    distributed array of the tensor's shape, otherwise rank 0's block."""
    if e.get("kind") == "distributed":
        return tuple(e["global_shape"])
    return stored_entry(e, 0).block_shape


def check_model(stored: dict, tensors: dict[str, torch.Tensor], where: str) -> None:
    """Raise a clear error, before anything is modified, if the model's
    parameter names, shapes or dtypes differ from the stored ones."""
    have = {n for n in stored if n.startswith(MODEL)}
    want = {n for n in tensors if n.startswith(MODEL)}
    if want and not have:
        raise MissingProviderError(f"{where} stores no model state (no 'model/...' providers)")
    missing = [n for n in tensors if n.startswith(MODEL) and n not in have]   # model order
    if missing:
        raise MissingProviderError(
            f"parameter {missing[0][len(MODEL):]!r} of the model is not in {where} "
            f"(provider {missing[0]!r}; {len(missing)} missing in all)")
    unknown = sorted(have - want) if want else []
    if unknown:
        raise MissingProviderError(
            f"{where} has parameter {unknown[0][len(MODEL):]!r} (provider {unknown[0]!r}) that the "
            f"model does not have ({len(unknown)} unknown in all)")
    for n in [n for n in tensors if n.startswith(MODEL)]:
        t, e = tensors[n], stored[n]
        if _stored_shape(e) != tuple(t.shape):
            raise ShapeMismatchError(f"parameter {n[len(MODEL):]!r} (provider {n!r}): {where} has "
                                     f"shape {_stored_shape(e)}, the model {tuple(t.shape)}")
        sd = storage_dtype(t.dtype)
        if np.dtype(e["dtype"]) != torch.empty(0, dtype=sd).numpy().dtype:
            raise ShapeMismatchError(f"parameter {n[len(MODEL):]!r} (provider {n!r}): {where} has "
                                     f"dtype {np.dtype(e['dtype'])}, the model {t.dtype}")


def check_optimizer(stored: dict, optimizer: torch.optim.Optimizer, groups: list[dict] | None,
                    where: str) -> None:
    if PARAM_GROUPS not in stored or groups is None:
        raise MissingProviderError(f"{where} stores no optimizer state ({PARAM_GROUPS!r})")
    ours = param_groups(optimizer)
    sizes = [len(g["params"]) for g in ours]
    theirs = [len(g["params"]) for g in groups]
    if sizes != theirs:
        raise ShapeMismatchError(f"optimizer: {where} has {len(theirs)} parameter group(s) of sizes "
                                 f"{theirs}, the optimizer {len(sizes)} of sizes {sizes}")
    nparams = sum(sizes)
    for n in stored:
        if n.startswith(OPTIM_STATE):
            i = int(n[len(OPTIM_STATE):].split("/")[0])
            if i >= nparams:
                raise ShapeMismatchError(f"optimizer state {n!r} of {where} is for parameter {i}, "
                                         f"the optimizer has {nparams}")
    flat = [p for g in optimizer.param_groups for p in g["params"]]
    for n, e in stored.items():
        if n.startswith(OPTIM_STATE) and e["kind"] in ("array", "distributed"):
            i, key = n[len(OPTIM_STATE):].split("/", 1)
            shp = _stored_shape(e)
            if shp and shp != tuple(flat[int(i)].shape) and key in ("exp_avg", "exp_avg_sq",
                                                                   "momentum_buffer", "max_exp_avg_sq"):
                raise ShapeMismatchError(f"optimizer state {n!r}: {where} has shape {shp}, "
                                         f"parameter {i} of the optimizer {tuple(flat[int(i)].shape)}")


def staging_buffers(stored: dict) -> dict[str, np.ndarray]:
    """Fresh host arrays for the stored optimizer tensors (restored into, then
    handed to ``optimizer.load_state_dict``; the optimizer may keep them)."""
    return {n: np.empty(_stored_shape(e), np.dtype(e["dtype"])) for n, e in stored.items()
            if n.startswith(OPTIM_STATE) and e["kind"] in ("array", "distributed")}


def optimizer_state_dict(buffers: dict[str, np.ndarray], scalars: dict, groups: list[dict],
                         dtypes: dict[str, str]) -> dict:
    state: dict[int, dict] = {int(i): dict(v) for i, v in (scalars or {}).items()}
    for n, a in buffers.items():
        i, key = n[len(OPTIM_STATE):].split("/", 1)
        dt = getattr(torch, dtypes.get(n, ""), None)
        t = torch.from_numpy(a)
        state.setdefault(int(i), {})[key] = from_numpy(a, dt) if isinstance(dt, torch.dtype) else t
    return {"state": state, "param_groups": groups}

