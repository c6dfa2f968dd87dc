"""Small models and training steps shared by the vlcc.torch tests."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def make(seed: int = 0, lr: float = 1e-2, width: int = 16):
    """A tiny MLP with Adam and a StepLR scheduler (seeded)."""
    torch.manual_seed(seed)
    np.random.seed(seed)       # every RNG seeded: DDP ranks then hold identical RNG states
    random.seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, width), torch.nn.ReLU(), torch.nn.Linear(width, 2))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
    return model, opt, sched


def train_step(model, opt, sched=None) -> float:
    """One step on data drawn from torch's RNG (so RNG restore matters)."""
    x, y = torch.randn(4, 8), torch.randn(4, 2)
    loss = ((model(x) - y) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    if sched is not None:
        sched.step()
    return loss.item()


def version_bytes(repo_path: str, vid: str) -> int:
    """Bytes a version added to the repository: its data/<id>/ directory
    (docs/format.md section 2; deduplicated chunks point into older versions)."""
    total = 0
    for root, _dirs, files in os.walk(os.path.join(repo_path, "data", vid)):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


def rank_bytes(repo: str, vid: str, rank: int) -> int:
    """Bytes rank ``rank`` wrote for a version: its own files ``r<rank>.*``
    under data/<id>/ (one file per rank: ``VLCC_NODE_FILES=0``)."""
    total = 0
    top = os.path.join(repo, "data", vid)
    for root, _d, files in os.walk(top):
        for f in files:
            p = os.path.join(root, f)
            if os.path.relpath(p, top).startswith(f"r{rank}."):
                total += os.path.getsize(p)
    return total


def same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def hold_flushes(monkeypatch):
    """Keep every asynchronous flush of this process waiting until the
    returned event is set (at most 60 s): versions saved meanwhile are
    captured while their parent is still in flight, whatever the timing."""
    import threading

    import vlcc.commit.checkpoint as commit
    gate = threading.Event()
    real = commit.flush_write

    def held(s, paths, pend, **kw):
        gate.wait(60)
        return real(s, paths, pend, **kw)
    monkeypatch.setattr(commit, "flush_write", held)
    return gate


def frozen_finetune(path: str, mode: str, group=None, gate=None):
    """A fine-tune with a frozen body (2 × 256×256 float32) and a small
    trained head: two versions saved back to back (the second while the first
    is in flight when ``gate`` holds the flushes). Returns (the frozen weights' bytes,
    ``vlcc du`` entry of the second version) on rank 0, (frozen bytes, None)
    elsewhere."""
    import vlcc
    import vlcc.torch as vt
    torch.manual_seed(0)
    body = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.Tanh(), torch.nn.Linear(256, 256))
    head = torch.nn.Linear(256, 4)
    model = torch.nn.Sequential(body, head)
    for p in body.parameters():
        p.requires_grad_(False)
    # the frozen weight matrices (the small biases share a packed leaf with other small tensors)
    frozen = sum(p.numel() * p.element_size() for p in body.parameters() if p.dim() > 1)
    opt = torch.optim.Adam(head.parameters(), lr=1e-3)

    def step():
        loss = model(torch.randn(8, 256)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with vt.Checkpointer(path, model, opt, mode=mode, group=group) as ck:
        step()
        ck.save(1)
        step()
        v2 = ck.save(2)
        if gate is not None:
            gate.set()
        ck.wait()
        rank = ck.rank
    if rank != 0:
        return frozen, None
    du = {v["id"]: v for v in vlcc.Repository(path).du()["versions"]}
    return frozen, dict(du[v2.id], path=os.path.join(path, "data", v2.id))


def index_bytes(version_dir: str) -> int:
    """Bytes of the index files in a version's data directory."""
    return sum(os.path.getsize(os.path.join(r, f)) for r, _d, fs in os.walk(version_dir)
               for f in fs if ".idx" in f)
