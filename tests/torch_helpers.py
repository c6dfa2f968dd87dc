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


def same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
