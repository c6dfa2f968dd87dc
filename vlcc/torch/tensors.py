"""Tensors as numpy arrays the vlcc core can capture and restore in place.

* CPU tensors: a numpy view sharing the tensor's memory (no copy at
  registration; the core copies it at capture in async mode).
* dtypes numpy lacks (bfloat16, float8 variants, ...): viewed as the
  integer of the same width (uint8, int16, int32, int64); the torch dtype is recorded in ``torch/meta`` so
  ``Repository.read`` callers can view the bytes back.
* CUDA tensors: a pinned host mirror, filled by a non-blocking copy on a side
  stream before capture and copied back after restore (written for machines
  with a GPU; the tests here run on CPU).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

_UINT = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def numpy_compatible(dtype: torch.dtype) -> bool:
    try:
        torch.empty(0, dtype=dtype).numpy()
        return True
    except (TypeError, RuntimeError):
        return False


def storage_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the bytes of a ``dtype`` tensor are stored as."""
    if numpy_compatible(dtype):
        return dtype
    width = torch.empty(0, dtype=dtype).element_size()
    if width not in _UINT:
        raise TypeError(f"cannot store torch dtype {dtype} (element size {width})")
    return _UINT[width]


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def dtype_from_name(name: str) -> torch.dtype:
    dt = getattr(torch, name, None)
    if not isinstance(dt, torch.dtype):
        raise TypeError(f"unknown torch dtype {name!r}")
    return dt


def as_numpy(t: torch.Tensor) -> np.ndarray:
    """A numpy view of a CPU tensor's memory (same bytes, numpy-compatible dtype)."""
    sd = storage_dtype(t.dtype)
    v = t.detach()
    if sd is not t.dtype:
        v = v.view(sd)
    return v.numpy()


def from_numpy(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """A tensor of ``dtype`` on the bytes of ``a`` (the inverse of :func:`as_numpy`)."""
    t = torch.from_numpy(a)
    return t if t.dtype is dtype else t.view(dtype)


@dataclass
class HostSlot:
    """What the core sees for one tensor: a host array. ``device`` tensors
    (CUDA) keep a pinned mirror that :class:`DeviceStager` fills."""

    tensor: torch.Tensor
    host: torch.Tensor          # the tensor itself on CPU, else its pinned mirror
    array: np.ndarray           # numpy view of ``host``

    @property
    def on_device(self) -> bool:
        return self.host is not self.tensor

    def key(self) -> tuple:
        t = self.tensor
        return (t.device.type, t.data_ptr(), tuple(t.shape), t.dtype, tuple(t.stride()))


def host_slot(t: torch.Tensor, old: HostSlot | None = None) -> HostSlot:
    """A slot for ``t``; ``old`` is reused when it still describes ``t``
    (same storage, shape, dtype), so registrations and pinned buffers persist."""
    t = t.detach()
    if old is not None and old.key() == HostSlot(t, t, old.array).key():
        return old
    if t.device.type == "cpu":
        return HostSlot(t, t, as_numpy(t))
    pin = torch.cuda.is_available()
    host = torch.empty(t.shape, dtype=t.dtype, device="cpu", pin_memory=pin)
    return HostSlot(t, host, as_numpy(host))


class DeviceStager:
    """Copies device tensors to their pinned mirrors before a capture (on a
    side stream, after the work already queued on the current stream) and
    back after a restore. No-op when every tensor is on the CPU."""

    def __init__(self):
        self._stream: Any = None

    def to_host(self, slots: list[HostSlot]) -> None:
        dev = [s for s in slots if s.on_device]
        if not dev:
            return
        if self._stream is None:
            self._stream = torch.cuda.Stream()
        self._stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self._stream):
            for s in dev:
                s.host.copy_(s.tensor, non_blocking=True)
        # the core captures (copies) the mirrors right after this returns, and
        # the optimizer may step right after that: the D2H copies must be done
        self._stream.synchronize()

    def to_device(self, slots: list[HostSlot]) -> None:
        dev = [s for s in slots if s.on_device]
        for s in dev:
            s.tensor.copy_(s.host, non_blocking=True)
        if dev:
            torch.cuda.current_stream().synchronize()
