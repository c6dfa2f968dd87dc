"""``vlcc.torch.Checkpointer``: versioned, asynchronous checkpoints of a torch
training state (model, optimizer, scheduler, RNG states, extra values) on top
of the public ``vlcc.Checkpointer``.

* ``save()`` captures the state into vlcc's memory tier (recycled buffers,
  no allocation and no page faults in steady state) and returns; hashing,
  dedup and the writes to the node-local and persistent tiers run in the
  core's background threads. Async with an optimizer, the capture is lazy
  (DataStates-LLM): parameters and optimizer state are copied on a background
  thread while the next forward/backward runs, and an optimizer step
  pre-hook waits for that copy before ``optimizer.step()`` modifies them
  (``settle()`` does the same for code that changes parameters itself).
  Persistent buffers (batch-norm statistics change in forward), values and
  the sync mode are copied before ``save()`` returns.
* Collectives go through ``group``: a torch.distributed process group (under
  ``torchrun``, no MPI), an mpi4py communicator (under ``mpiexec``), or none
  (one process). Identical DDP replicas are stored once (cross-rank dedup),
  and unchanged tensors (frozen layers) add no bytes to a version. With
  ``replicated=True`` (the default for a DDP-wrapped model) each rank also
  copies and hashes only its ~1/N share of them (``replicas.py``).
* ``load()`` checks names, shapes and dtypes against the stored version on
  every rank before anything is modified.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

import vlcc
from .. import settings
from ..comm import protocol
from ..errors import VlccError
from . import replicas as R
from . import state as S
from .comm import resolve_comm
from .tensors import DeviceStager, HostSlot, host_slot


def default_budget(model: torch.nn.Module | None, optimizer: Any) -> int:
    """Memory tier per rank when none is given: room for two versions of the
    state (one flushing while the next is captured). Capture buffers are
    recycled only when a version leaves the tier, and a fresh buffer costs
    page faults (here slower than the copy itself), so a budget of two
    versions makes every save after the first two fault-free; a larger one
    keeps more versions in memory for fast backtracking instead."""
    nbytes = sum(t.numel() * t.element_size() for t in model.state_dict().values()
                 if isinstance(t, torch.Tensor)) if model is not None else 0
    factor = 3 if optimizer is not None else 1     # Adam: parameters + two moments
    return 2 * factor * nbytes + (64 << 20)


class Checkpointer:
    """Versioned checkpoints of a torch training state.

    Parameters
    ----------
    path:       vlcc repository directory (created when missing).
    model, optimizer, scheduler: what to capture (each may be None).
    extra:      a dict of plain values (step counters, data-loader positions,
                config: dicts, lists, tuples of numpy arrays, torch tensors, str,
                int, float, bool, None, bytes) saved with each version and
                updated in place by ``load()``; entries with
                ``state_dict()``/``load_state_dict()`` are stored through those.
                Tensors are stored as numpy arrays and come back as CPU tensors.
    mode:       ``"async"`` (default; ``save()`` returns after the capture) or ``"sync"``.
    group:      torch.distributed process group, mpi4py communicator, or None
                (the world group when torch.distributed is initialized, else
                ``MPI.COMM_WORLD`` under mpiexec, else this process alone).
    branch:     branch to write to (default ``"main"``).
    replicated: model and optimizer state are the same on every rank (DDP):
                each tensor is captured, hashed and written by one rank
                (balanced by bytes) instead of by all, and stored as a
                distributed array of its real shape. Checked at the first
                save and whenever the tensors change (a differing tensor
                fails the save on every rank). None (default): True when
                ``model`` is a ``DistributedDataParallel``. One rank has
                nothing to split: per-rank capture as with False.
    **options:  passed to ``vlcc.Checkpointer`` (``memory_budget``, ``local_dir``,
                ``chunk_size``, ``dedup``, ...). ``memory_budget`` defaults to
                room for two versions of the state (:func:`default_budget`).
    """

    def __init__(self, path: str | os.PathLike, model: torch.nn.Module | None = None,
                 optimizer: torch.optim.Optimizer | None = None, scheduler: Any = None,
                 extra: dict | None = None, mode: str = "async", group: Any = None, *,
                 branch: str = "main", replicated: bool | None = None, **options: Any):
        if model is None and optimizer is None and scheduler is None and extra is None:
            raise VlccError("vlcc.torch.Checkpointer: give at least one of model, optimizer, "
                            "scheduler, extra")
        if extra is not None and not isinstance(extra, dict):
            raise VlccError(f"extra must be a dict, got {type(extra).__name__}")
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.extra = extra
        if "memory_budget" not in options and not settings.is_set("VLCC_MEMORY_BUDGET"):
            options["memory_budget"] = default_budget(model, optimizer)
        self.core = vlcc.Checkpointer(path, comm=resolve_comm(group), branch=branch,
                                      mode=mode, **options)
        self.comm = self.core.comm   # the core's private duplicate; all our collectives use it
        self.rank, self.size = self.core.rank, self.core.size
        if replicated is None:
            replicated = isinstance(model, torch.nn.parallel.DistributedDataParallel)
        self.replicated = bool(replicated)
        self._shares = R.Shares(self.rank, self.size) if self.replicated and self.size > 1 else None
        self._slots: dict[str, HostSlot] = {}
        self._registered: dict[str, Any] = {}     # name -> the object registered in the core
        self._staged: dict[str, Any] = {}
        self._stager = DeviceStager()
        self._values = self._value_providers()
        self._closed = False
        # Lazy capture (DataStates-LLM): in async mode the parameters and the
        # optimizer state are copied while the next forward/backward runs;
        # the optimizer step (the only thing that modifies them) waits for the
        # copy first. Without an optimizer nothing says when they change: eager.
        self._hook = None
        self._params: set[str] | None = None
        if mode == "async" and optimizer is not None and hasattr(optimizer, "register_step_pre_hook"):
            self._hook = optimizer.register_step_pre_hook(self._before_step)
        # Register what exists now: the core faults in capture buffers for it in
        # the background, so the first save copies into mapped memory.
        arrays = {n: sl.array for n, sl in self._live_slots().items()}
        self._sync((self._shares.layout(arrays) if self._shares else arrays) | self._values)

    def _before_step(self, *_args) -> None:
        if not self._closed:
            self.core.settle()

    def _lazy_names(self, slots: dict[str, HostSlot]) -> set[str]:
        """Providers whose capture copy may wait for the optimizer step:
        parameters and optimizer state (modified only by ``step``), and
        every pinned mirror of a device tensor (written only by ``save``).
        Persistent buffers (batch-norm statistics) change in forward: eager."""
        if self._hook is None:
            return set()
        if self._params is None:    # (a module's parameter set does not change in training)
            self._params = {S.MODEL + n for n, _ in self.model.named_parameters()} \
                if self.model is not None else set()
        return {n for n, sl in slots.items()
                if n in self._params or n.startswith(S.OPTIM_STATE) or sl.on_device}

    # -- context manager / repr ----------------------------------------------------
    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"vlcc.torch.Checkpointer({self.core.path!r}, branch={self.branch_name!r})"

    @property
    def branch_name(self) -> str:
        return self.core.branch_name

    @property
    def repository(self) -> vlcc.Repository:
        return self.core.repository

    def _check_open(self, what: str) -> None:
        if self._closed:
            raise VlccError(f"vlcc.torch.Checkpointer({self.core.path!r}) is closed: "
                            f"cannot {what}")

    # -- providers -----------------------------------------------------------------
    def _value_providers(self) -> dict[str, vlcc.ValueProvider]:
        """The small parts, as plain values (tensors inside them become numpy
        arrays: no pickle needed, :func:`state.to_plain`). ``set`` only stages:
        ``load()`` applies them once every provider has been read."""
        def value(name, get):
            return vlcc.ValueProvider(get=lambda: S.to_plain(get()),
                                      set=lambda v: self._staged.__setitem__(name, S.from_plain(v)))
        vp = {S.META: value(S.META, lambda: S.meta(self._tensors()) | {
                  "model_extra_state": S.model_extra_state(self.model)}),
              S.RNG: value(S.RNG, S.rng_state)}
        if self.optimizer is not None:
            vp[S.PARAM_GROUPS] = value(S.PARAM_GROUPS, lambda: S.param_groups(self.optimizer))
            vp[S.SCALARS] = value(S.SCALARS, lambda: S.optim_scalars(self.optimizer))
        if self.scheduler is not None:
            vp[S.SCHEDULER] = value(S.SCHEDULER, self.scheduler.state_dict)
        if self.extra is not None:
            vp[S.EXTRA] = value(S.EXTRA, lambda: S.capture_extra(self.extra))
        return vp

    def _tensors(self) -> dict[str, torch.Tensor]:
        return S.model_tensors(self.model) | S.optim_tensors(self.optimizer)

    def _sync(self, wanted: dict[str, Any]) -> None:
        """Make the core's registrations equal ``wanted`` (name -> numpy array or
        ValueProvider); unchanged objects stay registered."""
        for name in [n for n in self._registered if n not in wanted]:
            self.core.unregister(name)
            del self._registered[name]
        for name, obj in wanted.items():
            cur = self._registered.get(name)
            if cur is obj:
                continue
            if cur is not None:
                self.core.unregister(name)
            if isinstance(obj, R.Block):
                obj.register(self.core, name)
            else:
                self.core.register(name, obj)
            self._registered[name] = obj

    def _live_slots(self) -> dict[str, HostSlot]:
        """Host slots of the current model/optimizer tensors (the optimizer
        creates its state lazily and ``load_state_dict`` replaces tensors:
        looked up again at every save)."""
        slots = {n: host_slot(t, self._slots.get(n)) for n, t in self._tensors().items()}
        self._slots = slots
        return slots

    # -- save ----------------------------------------------------------------------
    def save(self, step: int, message: str | None = None, attrs: dict | None = None) -> vlcc.Version:
        """Collective. Capture the training state as a new version on the
        current branch and return it (``pending`` in async mode until it is
        durable; ``wait()`` blocks for that)."""
        self._check_open("save")
        self.core.settle()         # the previous lazy capture may still read the pinned mirrors
        slots = self._live_slots()
        arrays = {n: s.array for n, s in slots.items()}
        if self._shares is None:
            self._stager.to_host(list(slots.values()))
        else:   # device tensors: only this rank's share, but all of them for a check
            check = self._shares.stale(self.comm, arrays)
            self._stager.to_host([s for n, s in slots.items() if check or self._shares.owned(n)])
            arrays = self._shares.registrations(self.comm, arrays, check)
        self._sync(arrays | self._values)
        return self.core.checkpoint(step=step, message=message or "", attrs=attrs,
                                    lazy=self._lazy_names(slots))

    def settle(self) -> None:
        """Local. Block until the last ``save()``'s lazy copy is done: call it
        before modifying parameters other than through ``optimizer.step()``
        (the step waits by itself)."""
        self._check_open("settle")
        self.core.settle()

    def wait(self) -> list[vlcc.Version]:
        """Collective. Block until every saved version is durable and committed."""
        self._check_open("wait")
        return self.core.wait()

    # -- load ----------------------------------------------------------------------
    def _stored(self, spec: Any) -> tuple[vlcc.Version, Any]:
        """Rank 0 resolves ``spec`` and reads the optimizer's param_groups
        (small), everyone gets both."""
        def look():
            repo = vlcc.Repository(self.core.path)
            if isinstance(spec, vlcc.Version):
                v = repo.resolve(spec.id)
            else:
                v = repo.resolve(spec, branch=self.branch_name if spec in (None, "latest") else None)
            groups = None
            if self.optimizer is not None and S.PARAM_GROUPS in v.providers:
                groups = S.from_plain(repo.read(v, S.PARAM_GROUPS, rank=0))
            return v.manifest, groups
        doc, groups = protocol.from_root(self.comm, look)
        return vlcc.Version.from_manifest(doc), groups

    def load(self, spec: Any = "latest") -> vlcc.Version:
        """Collective. Restore model, optimizer, scheduler, RNG states and
        ``extra`` from a version (``"latest"`` of the current branch, an id,
        ``"tag:NAME"``, ``"branch:NAME"``, a ``vlcc.Version``). Names, shapes
        and dtypes are checked on every rank first: on a mismatch a
        ``vlcc.MissingProviderError``/``vlcc.ShapeMismatchError`` names the
        parameter and nothing is modified. The loaded version becomes the
        parent of the next save."""
        self._check_open("load")
        self.core.wait()                 # pending versions become loadable by id
        v, groups = self._stored(spec)
        where = f"version {v.id}"
        stored = v.providers
        slots = self._live_slots()
        model_slots = {n: s for n, s in slots.items() if n.startswith(S.MODEL)}

        def check():
            S.check_model(stored, {n: s.tensor for n, s in model_slots.items()}, where)
            if self.optimizer is not None:
                S.check_optimizer(stored, self.optimizer, groups, where)
            for name, what in ((S.SCHEDULER, self.scheduler), (S.EXTRA, self.extra)):
                if what is not None and name not in stored:
                    raise vlcc.MissingProviderError(f"{where} stores no {name!r} (given to the "
                                                    f"Checkpointer)")
        protocol.agree(self.comm, check)

        buffers = S.staging_buffers(stored) if self.optimizer is not None else {}
        # a tensor stored split (replicated=True) is a distributed array: every
        # rank reads the whole of it
        wanted: dict[str, Any] = {n: R.whole(a) if stored[n]["kind"] == "distributed" else a
                                  for n, a in ({n: s.array for n, s in model_slots.items()}
                                               | buffers).items()}
        for name, vp in self._values.items():
            if name == S.RNG and not (v.nranks == self.size or stored.get(S.RNG, {}).get("replicated")):
                continue   # per-rank RNG streams do not map onto another world size
            if name in stored:
                wanted[name] = vp
        self._staged = {}
        self._sync(wanted)
        try:
            self.core.restore(v.id, strict=False)
        finally:
            staged, self._staged = self._staged, {}
        self._stager.to_device(list(model_slots.values()))
        self._apply(staged, buffers)
        return v

    def _apply(self, staged: dict, buffers: dict[str, np.ndarray]) -> None:
        meta = staged.get(S.META, {})
        if self.model is not None and meta.get("model_extra_state"):
            # modules with get_extra_state(): load_state_dict is the only way in
            sd = dict(self.model.state_dict()) | meta["model_extra_state"]
            self.model.load_state_dict(sd)
        if self.optimizer is not None:
            sd = S.optimizer_state_dict(buffers, staged.get(S.SCALARS, {}),
                                        staged[S.PARAM_GROUPS], meta.get("dtypes", {}))
            self.optimizer.load_state_dict(sd)
        if self.scheduler is not None and S.SCHEDULER in staged:
            self.scheduler.load_state_dict(staged[S.SCHEDULER])
        if self.extra is not None and S.EXTRA in staged:
            S.restore_extra(self.extra, staged[S.EXTRA])
        if S.RNG in staged:
            S.set_rng_state(staged[S.RNG])

    # -- refs ----------------------------------------------------------------------
    def branch(self, name: str, at: Any = None) -> vlcc.Version:
        """Collective. Create branch ``name`` at version ``at`` (default: the
        last saved or loaded version). ``switch(name)`` then ``load()`` to
        continue training from it."""
        self._check_open("branch")
        return self.core.branch(name, at=at)

    def switch(self, name: str, *, create: bool = False) -> None:
        """Collective. Write the next versions on branch ``name``."""
        self._check_open("switch")
        self.core.switch(name, create=create)

    def tag(self, name: str, version: Any = None) -> None:
        """Collective. Fix tag ``name`` on ``version`` (default: the last one)."""
        self._check_open("tag")
        self.core.tag(name, version)

    def log(self, branch: str | None = None) -> list[vlcc.Version]:
        """Versions newest first (all branches when ``branch`` is None)."""
        self._check_open("log")
        return self.core.log(branch)

    @property
    def stats(self) -> dict:
        return self.core.stats

    def close(self) -> None:
        """Collective. Wait for pending versions, stop background threads. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        self.core.close()
