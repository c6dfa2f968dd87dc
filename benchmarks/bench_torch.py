"""Checkpointing a GPT-like model during training: vlcc.torch against
torch.save, dcp.save, dcp.async_save and dcp.save with vlcc's StorageWriter,
side by side in one run.

    python benchmarks/bench_torch.py [--params 50e6] [--steps 40] [--every 5] [--nprocs 1 2]

For 1 process (torch on one thread: the machine's other core is left free),
then 2 processes (torchrun, gloo, DDP replicas, one thread each), a decoder-
only transformer of about --params parameters trained with Adam (state per
rank ≈ 3 × params × 4 bytes):

1. training loop of --steps steps with a checkpoint every --every steps, once
   per method, between loops without checkpoints (the baseline, averaged):
   slowdown = loop time / baseline − 1 (goal ≤ 5 %), and the median blocking
   time of one checkpoint call (vlcc's goal ≤ 0.1 × torch.save). Steady
   state: each method saves once and drains before its timed loop (vlcc's
   memory-tier buffers, dcp.async_save's staging buffers); that first save's
   blocking time is reported apart ("first"). The loop time ends at the last
   step; the time to drain what is still being written after it is reported
   apart ("drain"). With 2+ processes vlcc runs with ``replicated=True``
   (DDP: each rank captures its share of the replicas; torch.save writes on
   rank 0 only and dcp dedups replicated tensors in its save plan).
2. bytes on disk after 8 checkpoints (one training step apart), per method:
   training every parameter, and a fine-tune with every transformer block
   frozen (only the embeddings, final norm and output head train).
Times are the slowest rank's. Prints ratios against the same-run references
and one SUMMARY line. ``--profile`` prints where vlcc's blocking time goes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import vlcc.torch as vt  # noqa: E402

METHODS = ("vlcc", "torch.save", "dcp.save", "dcp.async_save", "dcp+vlcc")


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def barrier():
    if dist.is_initialized():
        dist.barrier()


def slowest(x: float) -> float:
    if not dist.is_initialized():
        return x
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, x)
    return max(out)


class GPT(torch.nn.Module):
    """Token + position embeddings, pre-norm transformer blocks with a causal
    mask, an output head (not tied)."""

    def __init__(self, vocab: int, d: int, layers: int, heads: int, seq: int):
        super().__init__()
        self.tok = torch.nn.Embedding(vocab, d)
        self.pos = torch.nn.Embedding(seq, d)
        self.blocks = torch.nn.ModuleList(
            torch.nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, batch_first=True,
                                             norm_first=True) for _ in range(layers))
        self.norm = torch.nn.LayerNorm(d)
        self.head = torch.nn.Linear(d, vocab, bias=False)
        self.register_buffer("mask", torch.nn.Transformer.generate_square_subsequent_mask(seq),
                             persistent=False)

    def forward(self, idx):
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1]))
        for b in self.blocks:
            x = b(x, src_mask=self.mask, is_causal=True)
        return self.head(self.norm(x))


def build(a) -> GPT:
    per_block = 12 * a.width * a.width + 13 * a.width
    layers = max(1, round((a.params - 2 * a.vocab * a.width) / per_block))
    torch.manual_seed(0)
    return GPT(a.vocab, a.width, layers, a.heads, a.seq)


def dir_bytes(path: str) -> int:
    total = 0
    for root, _d, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


class Saver:
    """One checkpointing method: ``save(step)`` is the blocking call,
    ``drain()`` waits for what is still being written."""

    def __init__(self, method: str, root: str, model, opt, pg):
        self.method, self.root, self.model, self.opt, self.pg = method, root, model, opt, pg
        self.fut = None
        self.ck = (vt.Checkpointer(root, model, opt, replicated=dist.is_initialized())
                   if method == "vlcc" else None)

    def state(self) -> dict:
        return {"model": self.model.state_dict(), "optim": self.opt.state_dict()}

    def save(self, step: int) -> None:
        import torch.distributed.checkpoint as dcp
        m = self.method
        if m == "vlcc":
            self.ck.save(step)
        elif m == "torch.save":
            if rank() == 0:      # replicas: rank 0 writes (DeepSpeed's default engine does so)
                os.makedirs(self.root, exist_ok=True)
                torch.save(self.state(), os.path.join(self.root, f"step{step}.pt"))
        elif m == "dcp.save":
            dcp.save(self.state(), checkpoint_id=os.path.join(self.root, f"step{step}"),
                     process_group=self.pg)
        elif m == "dcp.async_save":
            if self.fut is not None:
                self.fut.result()      # one in flight at a time (its staging buffers)
            self.fut = dcp.async_save(self.state(), checkpoint_id=os.path.join(self.root, f"step{step}"),
                                      process_group=self.pg)
        elif m == "dcp+vlcc":
            dcp.save(self.state(), storage_writer=vt.StorageWriter(self.root, step=step), process_group=self.pg)

    def drain(self) -> None:
        if self.ck is not None:
            self.ck.wait()
        if self.fut is not None:
            self.fut.result()
            self.fut = None

    def close(self) -> None:
        self.drain()
        if self.ck is not None:
            self.ck.close()


def background_cpu() -> float:
    """CPU seconds used so far by this process's vlcc threads (flusher,
    capture, prefetch), from /proc (0 where there is none)."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0.0
    for t in __import__("threading").enumerate():
        if t.name.startswith("vlcc-") and t.native_id:
            try:
                with open(f"/proc/self/task/{t.native_id}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick    # utime + stime
            except OSError:
                pass
    return total


def floor_cpu(state: dict) -> tuple[float, float]:
    """The least CPU an asynchronous checkpoint of ``state`` costs a rank, in
    this run: copy every byte once (into a preallocated, faulted buffer, as
    vlcc's recycled capture buffers are) and hash it once (xxh3-128, as
    vlcc's dedup does); seconds (best of 3)."""
    import numpy as np
    import xxhash
    arrs = [t.detach().reshape(-1).view(torch.uint8).numpy() for t in state.values()]
    dst = [np.empty_like(a) for a in arrs]
    for d in dst:
        d[:] = 0
    copy = hsh = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for d, a in zip(dst, arrs):
            np.copyto(d, a)
        copy = min(copy, time.perf_counter() - t)
        t = time.perf_counter()
        for d in dst:
            xxhash.xxh3_128_digest(d)
        hsh = min(hsh, time.perf_counter() - t)
    return copy, hsh


def loop(step, steps: int, every: int, saver: Saver | None):
    """Time of ``steps`` training steps with a save every ``every`` (slowest
    rank), the blocking time of each save, the drain time after, and the CPU
    seconds vlcc's background threads used (the slowest rank's)."""
    blocks = []
    barrier()
    cpu0 = background_cpu()
    t0 = time.perf_counter()
    for s in range(1, steps + 1):
        step()
        if saver is not None and s % every == 0:
            t = time.perf_counter()
            saver.save(s)
            blocks.append(time.perf_counter() - t)
    t1 = time.perf_counter()
    if saver is not None:
        saver.drain()
    t2 = time.perf_counter()
    cpu = background_cpu() - cpu0
    barrier()
    return slowest(t1 - t0), [slowest(b) for b in blocks], slowest(t2 - t1), slowest(cpu)


def profile_vlcc(ck: vt.Checkpointer, step, reps: int = 3) -> dict:
    """Where one vlcc save blocks: the torch side (state_dict walks, slots),
    the core's capture + agreement, measured apart."""
    import cProfile
    import io
    import pstats
    pr = cProfile.Profile()
    for i in range(reps):
        step()
        pr.enable()
        ck.save(10_000 + i)
        pr.disable()
    ck.wait()
    out = io.StringIO()
    pstats.Stats(pr, stream=out).sort_stats("cumulative").print_stats(18)
    return {"profile": out.getvalue()}


def saver_state(model, opt) -> dict:
    """Every tensor of the training state (model, then Adam's moments)."""
    out = {f"model.{k}": v for k, v in model.state_dict().items()}
    for i, st in opt.state_dict()["state"].items():
        out.update({f"optim.{i}.{k}": v for k, v in st.items()
                    if isinstance(v, torch.Tensor) and v.numel() > 1})
    return out


def run(a, out_json: str) -> None:
    n = dist.get_world_size() if dist.is_initialized() else 1
    torch.set_num_threads(1)
    model = build(a)
    nparams = sum(p.numel() for p in model.parameters())
    net = torch.nn.parallel.DistributedDataParallel(model) if n > 1 else model
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(rank())
    data = torch.randint(0, a.vocab, (a.batch, a.seq + 1), generator=g)

    def step(o=opt):
        logits = net(data[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, a.vocab), data[:, 1:].reshape(-1))
        o.zero_grad(set_to_none=True)
        loss.backward()
        o.step()

    step()
    pg = dist.new_group(backend="gloo") if n > 1 else None
    state_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values()) + sum(
        t.numel() * t.element_size() for s in opt.state_dict()["state"].values()
        for t in s.values() if isinstance(t, torch.Tensor))
    res = {"nprocs": n, "params": nparams, "state_mib": state_bytes / 2**20, "methods": {}}
    root = a.dir
    bases = [loop(step, a.steps, a.every, None)[0]]
    for m in METHODS:
        d = os.path.join(root, m.replace("+", "_"))
        saver = Saver(m, d, model, opt, pg)
        barrier()
        t = time.perf_counter()
        saver.save(0)                  # the first save: buffers allocated, then steady state
        first = slowest(time.perf_counter() - t)
        saver.drain()
        t, blocks, drain, cpu = loop(step, a.steps, a.every, saver)
        barrier()
        res["methods"][m] = {"loop": t, "block": statistics.median(blocks), "first_block": first,
                             "drain": drain, "bg_cpu": cpu / len(blocks)}
        if m == "vlcc" and a.profile:
            res["profile"] = profile_vlcc(saver.ck, step)["profile"]
        saver.close()
        if m == "vlcc":    # the baseline again between the methods: the machine drifts
            bases.append(loop(step, a.steps, a.every, None)[0])
        barrier()
        if rank() == 0:
            shutil.rmtree(d, ignore_errors=True)
    bases.append(loop(step, a.steps, a.every, None)[0])
    res["floor"] = [slowest(x) for x in floor_cpu({k: v for k, v in saver_state(model, opt).items()})]
    res["base"] = statistics.mean(bases)
    res["bases"] = bases
    res["step_seconds"] = res["base"] / a.steps

    # -- bytes on disk after 8 checkpoints (a step between two), per method: training, then a
    # fine-tune with every transformer block frozen ------------------------------------------------
    def eight(key, o):
        res[key] = {}
        for m in METHODS:
            d = os.path.join(root, key + "_" + m.replace("+", "_"))
            saver = Saver(m, d, model, o, pg)
            loop(lambda: step(o), 8, 1, saver)
            saver.close()
            barrier()
            res[key][m] = dir_bytes(d) if rank() == 0 else 0
            barrier()
            if rank() == 0:
                shutil.rmtree(d, ignore_errors=True)
    eight("full", opt)
    for b in model.blocks:
        for p in b.parameters():
            p.requires_grad_(False)
    ft_opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    if n > 1:
        net = torch.nn.parallel.DistributedDataParallel(model)
    step(ft_opt)
    eight("frozen", ft_opt)
    if rank() == 0:
        with open(out_json, "w") as f:
            json.dump(res, f)
    barrier()


def child(a) -> None:
    dist.init_process_group("gloo")
    try:
        run(a, a.out)
    finally:
        dist.destroy_process_group()


def report(r: dict, a) -> None:
    n, M = r["nprocs"], r["methods"]
    ts = M["torch.save"]["block"]
    print(f"\n== {n} process(es): GPT-like, {r['params'] / 1e6:.1f} M parameters, "
          f"{r['state_mib']:.0f} MiB state per rank (model + Adam); {r['step_seconds']:.3f} s/step, "
          f"a checkpoint every {a.every} steps, {a.steps} steps per loop "
          f"(baselines {', '.join(f'{b:.1f}' for b in r['bases'])} s)")
    print(f"  {'method':<15} {'block s':>8} {'xtorch.save':>11} {'slowdown':>9} {'drain s':>8} "
          f"{'MiB/8 ckpt':>11} {'frozen MiB/8':>13}")
    for m in METHODS:
        e = M[m]
        print(f"  {m:<15} {e['block']:8.3f} {e['block'] / ts:11.3f} {100 * (e['loop'] / r['base'] - 1):+8.1f}% "
              f"{e['drain']:8.2f} {r['full'][m] / 2**20:11.1f} "
              f"{r['frozen'][m] / 2**20:13.1f}")
    print(f"  first save, untimed before each loop (buffers allocated): "
          + ", ".join(f"{m} {M[m]['first_block']:.3f} s" for m in METHODS))
    interval = a.every * r["step_seconds"]
    copy, hsh = r["floor"]
    print(f"  CPU per checkpoint per rank: vlcc's threads {M['vlcc']['bg_cpu']:.3f} s "
          f"({100 * M['vlcc']['bg_cpu'] / interval:.1f}% of the {interval:.2f} s between two); "
          f"floor (copy {copy:.3f} s + xxh3 {hsh:.3f} s of the state, this run, "
          f"split over {n} rank(s)) {(copy + hsh) / n:.3f} s = "
          f"{100 * (copy + hsh) / n / interval:.1f}%. Without a free core "
          f"(n={n} on {os.cpu_count()} CPUs) this CPU is taken from training.")
    if "profile" in r:
        print(r["profile"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", type=float, default=50e6)
    ap.add_argument("--width", type=int, default=512, help="model width")
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=40, help="steps per timed loop")
    ap.add_argument("--every", type=int, default=5)
    ap.add_argument("--nprocs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--dir", default=None)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a)
    top = tempfile.mkdtemp(prefix="bench_torch-", dir=a.dir)
    results = []
    try:
        for n in a.nprocs:
            out = os.path.join(top, f"res{n}.json")
            d = os.path.join(top, f"n{n}")
            if n == 1:
                run(argparse.Namespace(**vars(a) | {"dir": d}), out)
            else:
                from vlcc._mpi import without_launcher
                env = dict(without_launcher(), OMP_NUM_THREADS="1")
                cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                       "--nproc-per-node", str(n), os.path.abspath(__file__), "--child",
                       "--out", out, "--dir", d] + [
                       f"--{k}={getattr(a, k)}" for k in ("params", "width", "heads", "vocab", "seq",
                                                          "batch", "steps", "every")] + (
                       ["--profile"] if a.profile else [])
                subprocess.run(cmd, env=env, check=True)
            with open(out) as f:
                results.append(json.load(f))
            report(results[-1], a)
            shutil.rmtree(d, ignore_errors=True)
    finally:
        shutil.rmtree(top, ignore_errors=True)
    parts = []
    for r in results:
        M = r["methods"]
        parts.append(
            f"n={r['nprocs']}: vlcc block {M['vlcc']['block'] / M['torch.save']['block']:.3f}x torch.save "
            f"(goal <= 0.1), slowdown vlcc {100 * (M['vlcc']['loop'] / r['base'] - 1):+.1f}% (goal <= 5) "
            f"torch.save {100 * (M['torch.save']['loop'] / r['base'] - 1):+.1f}% "
            f"dcp.async_save {100 * (M['dcp.async_save']['loop'] / r['base'] - 1):+.1f}%, "
            f"bytes after 8 vlcc/torch.save {r['full']['vlcc'] / max(1, r['full']['torch.save']):.3f} "
            f"frozen {r['frozen']['vlcc'] / max(1, r['frozen']['torch.save']):.3f}")
    if results:
        print(f"\nSUMMARY bench_torch params={results[0]['params'] / 1e6:.1f}M: " + "; ".join(parts))


if __name__ == "__main__":
    main()
