"""Backtracking and fine-tuning with vlcc.torch.

    python examples/ai/backtrack.py [--repo runs/backtrack]

1. Train a small regression model, saving a version every 5 steps (async:
   save() returns after the capture; the bytes are written in the background).
2. At step 23 a bad batch makes the loss spike. The run notices (loss more than
   5x the recent median), saves the diverged state (it stays addressable on
   "main"), goes back to the last version saved before the spike, opens the
   branch "lr-small" there, and continues with a 10x lower learning rate.
3. A fine-tune branch starts from the best version with the body frozen and a
   new optimizer on the head: its versions store only the head (frozen weights
   deduplicate to zero new bytes).
4. `vlcc log` shows the branches.
Runs on one CPU process in a few seconds; under torchrun the same code uses
torch.distributed for vlcc's collectives.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys

import torch

import vlcc
import vlcc.torch as vt
from vlcc.cli import main as vlcc_cli


def batch(step: int, spike_at: int | None):
    x = torch.randn(64, 16)
    y = x @ torch.linspace(-1, 1, 16).unsqueeze(1) + 0.1 * torch.randn(64, 1)
    if step == spike_at:
        y = y * 1e4            # a corrupted batch: the loss (and the update) explodes
    return x, y


def train(model, opt, ck, steps, start, spike_at=None, every=5, label=""):
    """Train ``steps`` steps; save every ``every``; stop at a loss spike and
    return the step it happened at (else None)."""
    losses = []
    for step in range(start + 1, start + steps + 1):
        x, y = batch(step, spike_at)
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if len(losses) >= 5 and loss.item() > 5 * statistics.median(losses[-5:]):
            # keep the diverged state too: it stays addressable for a post-mortem
            v = ck.save(step, f"{label} step {step}: diverged", attrs={"loss": loss.item()})
            print(f"  [{label}] step {step}: loss {loss.item():.3g} spikes (recent median "
                  f"{statistics.median(losses[-5:]):.3g}) -> version {v.id}, stop")
            return step
        losses.append(loss.item())
        if step % every == 0:
            v = ck.save(step, f"{label} step {step}", attrs={"loss": loss.item(),
                                                             "lr": opt.param_groups[0]["lr"]})
            print(f"  [{label}] step {step}: loss {loss.item():.4f} -> version {v.id}")
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", default=os.path.join("runs", "backtrack"))
    a = ap.parse_args()
    shutil.rmtree(a.repo, ignore_errors=True)
    torch.manual_seed(0)
    body = torch.nn.Sequential(torch.nn.Linear(16, 256), torch.nn.Tanh(),
                               torch.nn.Linear(256, 256), torch.nn.Tanh())
    head = torch.nn.Linear(256, 1)
    model = torch.nn.Sequential(body, head)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    print("1. training on branch main, a version every 5 steps")
    with vt.Checkpointer(a.repo, model, opt) as ck:
        spike = train(model, opt, ck, 40, 0, spike_at=23, label="main")
        assert spike is not None

        print("2. backtrack: back to the last version before the spike, branch lr-small")
        ck.wait()
        before = next(v for v in ck.log("main") if v.step < spike)
        ck.branch("lr-small", at=before)
        ck.switch("lr-small")
        ck.load()                                  # model, optimizer, RNG as at that version
        for g in opt.param_groups:
            g["lr"] /= 10
        print(f"  loaded version {before.id} (step {before.step}); lr now {opt.param_groups[0]['lr']:g}")
        assert train(model, opt, ck, 40 - before.step, before.step, label="lr-small") is None
        ck.tag("lr-small-final")
        ck.wait()
        best = min(ck.log("lr-small"), key=lambda v: v.attrs.get("loss", float("inf")))

    print(f"3. fine-tune branch from version {best.id} (step {best.step}), body frozen")
    with vt.Checkpointer(a.repo, model) as ck:       # model only: take the weights
        ck.branch("finetune", at=best)
        ck.switch("finetune")
        ck.load()
    for p in body.parameters():
        p.requires_grad_(False)
    ft_opt = torch.optim.Adam(head.parameters(), lr=1e-3)
    with vt.Checkpointer(a.repo, model, ft_opt, branch="finetune") as ck:
        train(model, ft_opt, ck, 10, best.step, label="finetune")
        ck.wait()
        ft_versions = [v for v in ck.log("finetune") if v.branch == "finetune"][::-1]   # oldest first
        ft = ft_versions[-1]

    repo = vlcc.Repository(a.repo)
    # the frozen weight matrices (the small biases are packed with other small tensors)
    frozen = sum(p.numel() * p.element_size() for p in body.parameters() if p.dim() > 1)
    for v in ft_versions:
        du = next(e for e in repo.du()["versions"] if e["id"] == v.id)   # as `vlcc du` shows it
        # stored: what this version alone added to disk (its new chunks + index);
        # reused: chunks it references in older versions (the frozen body)
        print(f"  fine-tune version {v.id} (step {v.step}): stored {du['stored_bytes']} bytes of "
              f"{du['logical_bytes']} (reused {du['reused_bytes']}; frozen weights {frozen})")
    print("   ", "model/0.2.weight unchanged:",
          bool((repo.read(ft, "model/0.2.weight") == repo.read(best, "model/0.2.weight")).all()))

    print("4. vlcc log (all branches)")
    return vlcc_cli(["log", "--graph", a.repo])


if __name__ == "__main__":
    sys.exit(main())
