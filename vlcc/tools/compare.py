"""``Checkpointer(compare_to="PATH[@BRANCH]", rtol=, atol=, on_diverge=)``:
compare every checkpoint with the reference run's version of the same step.

Called by the Checkpointer (collectively) after the providers are captured
and before the version is written, so the result is part of the version:

* ``attrs["compared_to"]``: ``"PATH@ID"`` of the reference version used;
* ``attrs["divergence"]`` (only when it differs): the first difference of this
  checkpoint — ``step``, ``provider``, ``index`` (global index; per-rank data:
  ``[rank, ...]``), ``size`` (largest ``|a - b|`` in that provider, None for
  non-numeric values), ``differing`` (elements beyond tolerance), ``max_rel``,
  ``version``, ``reference``, ``note``.

``ck.divergence`` is the first such record of the run (None while equal).
``on_diverge``: ``"record"`` (default), ``"warn"`` (a warning on rank 0), or
``"raise"`` (``vlcc.DivergenceError`` on every rank once the diverging version
is committed, so it stays available to ``vlcc diff`` and ``vlcc replay``).

Each rank reads from the reference only the box its own block covers
(``Repository.read(..., box=)``), so the two runs may use different rank
counts; per-rank data and values compare rank by rank when the rank counts
match or the reference stored them replicated."""

from __future__ import annotations

import warnings

import numpy as np

from ..comm import protocol
from ..errors import DivergenceError, VlccError
from ..repo.manifest import stored_entry
from ..repository import Repository
from .diff import jsonable
from .elementwise import Tally, values_equal
from .spec import split_target
from ..repo.values import decode as decode_value

ON_DIVERGE = ("record", "warn", "raise")


class Comparator:
    """Compares the checkpoints of one Checkpointer with a reference run."""

    def __init__(self, comm, compare_to: str, *, rtol: float = 0.0, atol: float = 0.0,
                 on_diverge: str = "record", allow_pickle: bool = False):
        if on_diverge not in ON_DIVERGE:
            raise VlccError(f"on_diverge must be one of {', '.join(ON_DIVERGE)}, got {on_diverge!r}")
        if not (rtol >= 0 and atol >= 0):
            raise VlccError(f"tolerances must be >= 0, got rtol={rtol}, atol={atol}")
        self.comm, self.rtol, self.atol, self.on_diverge = comm, float(rtol), float(atol), on_diverge
        self.allow_pickle = allow_pickle
        path, branch = split_target(compare_to)
        self.branch = (branch or "main").removeprefix("branch:")
        self.first: dict | None = None      # first divergence of this run
        self.last: dict | None = None       # divergence of the latest checkpoint

        def check():
            repo = Repository(path)
            if self.branch not in repo.branches():
                raise VlccError(f"compare_to: reference repository {repo.path} has no branch "
                                f"{self.branch!r} (branches: {', '.join(sorted(repo.branches())) or 'none'})")
            return repo.path
        self.path = protocol.from_root(comm, check)
        self._repo: Repository | None = None

    @property
    def repo(self) -> Repository:
        if self._repo is None:
            self._repo = Repository(self.path)
        return self._repo

    def check(self, pend) -> dict | None:
        """Collective. Compare the captured leaves of the checkpoint ``pend``
        (``vid``, ``step``, ``leaves``, ``attrs``) with the reference version of
        the same step; note the result in ``pend.attrs``."""
        self.last = None
        if pend.step is None:
            return None

        def find():
            for v in self.repo.log(branch=self.branch):
                if v.step == pend.step:
                    return v.id
            return None
        ref = protocol.from_root(self.comm, find)
        if ref is None:
            return None   # the reference run has no checkpoint at this step
        mine = protocol.allgather(self.comm, lambda: self._local(ref, pend.leaves))
        record = _merge(mine, pend.leaves)
        pend.attrs["compared_to"] = f"{self.path}@{ref}"
        if record is None:
            return None
        record = jsonable({"step": pend.step, "version": pend.vid,
                           "reference": f"{self.path}@{ref}"} | record)
        pend.attrs["divergence"] = record
        self.last = record
        if self.first is None:
            self.first = record
        if self.on_diverge == "warn" and self.comm.rank == 0:
            warnings.warn(describe(record), stacklevel=3)
        return record

    def raise_if_diverged(self) -> None:
        """With ``on_diverge="raise"``: DivergenceError (every rank) when the
        checkpoint just committed diverged."""
        if self.on_diverge == "raise" and self.last is not None:
            raise DivergenceError(describe(self.last), self.last)

    # -- this rank's part ------------------------------------------------------
    def _local(self, ref: str, leaves) -> dict[str, dict]:
        """Per leaf name: this rank's comparison (differing, max_abs, max_rel,
        first flat global index / index, or a note when not comparable)."""
        v = self.repo.resolve(ref)
        rank, size = self.comm.rank, self.comm.size
        out = {}
        for leaf in leaves:
            e = v.providers.get(leaf.name)
            if e is None:
                out[leaf.name] = {"note": f"not in the reference version {ref}"}
                continue
            if e["kind"] != leaf.kind:
                out[leaf.name] = {"note": f"a {leaf.kind} here, a {e['kind']} in the reference"}
                continue
            if leaf.kind == "derived":
                mine = (leaf.extra or {}).get("recipe"), (leaf.extra or {}).get("inputs")
                same = mine == (e.get("recipe"), e.get("inputs"))
                out[leaf.name] = {} if same else {"note": f"recipe {mine[0]!r} vs {e.get('recipe')!r}"}
                continue
            if leaf.kind == "distributed":
                gs = tuple(e["global_shape"])
                if tuple(leaf.global_shape) != gs:
                    out[leaf.name] = {"note": f"global shape {tuple(leaf.global_shape)} here, "
                                              f"{gs} in the reference"}
                    continue
                x = leaf.data.view(np.dtype(leaf.dtype)).reshape(leaf.shape)
                y = self.repo.read(v, leaf.name, box=(tuple(leaf.offset), tuple(leaf.shape)))
                t = Tally()
                t.add(x, y, self.rtol, self.atol, offset=tuple(leaf.offset))
                out[leaf.name] = _tally(t, gs)
                continue
            nref = stored_entry(e, v.nranks).nblocks
            k = 0 if e.get("replicated") else rank if nref == size else None
            if k is None:
                out[leaf.name] = {"note": f"per-rank data: the reference wrote it on {nref} ranks "
                                          f"with different content per rank, this run has {size}"}
                continue
            y = self.repo.read(v, leaf.name, rank=k, allow_pickle=self.allow_pickle)
            if leaf.kind == "value":
                same, mag = values_equal(decode_value(leaf.data, leaf.dtype, leaf.name, self.allow_pickle), y, self.rtol, self.atol)
                out[leaf.name] = {"differing": int(not same), "max_abs": mag, "max_rel": None,
                                  "order": rank, "index": [rank]} if not same else {}
                continue
            x = leaf.data.view(np.dtype(leaf.dtype)).reshape(leaf.shape)
            if x.shape != y.shape:
                out[leaf.name] = {"note": f"rank {rank}: shape {x.shape} here, {y.shape} in the reference"}
                continue
            t = Tally()
            t.add(x, y, self.rtol, self.atol)
            r = _tally(t, None)
            if t.first_index is not None:
                r["order"], r["index"] = rank, [rank, *t.first_index]
            out[leaf.name] = r
        return out


def _tally(t: Tally, gshape) -> dict:
    if not t.differing:
        return {}
    r = {"differing": t.differing, "max_abs": t.max_abs, "max_rel": t.max_rel,
         "index": list(t.first_index)}
    r["order"] = int(np.ravel_multi_index(t.first_index, gshape)) if gshape else 0
    return r


def _merge(per_rank: list[dict[str, dict]], leaves) -> dict | None:
    """The first divergent provider (by name) over all ranks, or None."""
    for name in sorted(l.name for l in leaves):
        parts = [p[name] for p in per_rank if p.get(name)]
        if not parts:
            continue
        notes = [p["note"] for p in parts if "note" in p]
        if notes:
            return {"provider": name, "index": None, "size": None, "differing": None,
                    "max_rel": None, "note": notes[0]}
        first = min(parts, key=lambda p: p["order"])
        mags = [p["max_abs"] for p in parts if p.get("max_abs") is not None]
        rels = [p["max_rel"] for p in parts if p.get("max_rel") is not None]
        return {"provider": name, "index": first["index"], "size": max(mags) if mags else None,
                "differing": sum(p["differing"] for p in parts),
                "max_rel": max(rels) if rels else None, "note": ""}
    return None


def describe(r: dict) -> str:
    at = f" at index {tuple(r['index'])}" if r.get("index") is not None else ""
    size = f", |a-b| up to {r['size']:.3g}" if r.get("size") is not None else ""
    n = f", {r['differing']} element(s) differ" if r.get("differing") else ""
    note = f" ({r['note']})" if r.get("note") else ""
    return (f"step {r['step']}: provider {r['provider']!r} diverges from the reference "
            f"{r['reference']}{at}{size}{n}{note}")
