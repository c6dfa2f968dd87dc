"""vlcc.torch against torch.save and dcp.async_save, measured in one run.

    python benchmarks/bench_torch.py [--params 50e6] [--steps 20] [--every 10] [--nprocs 1 2]

For 1 process, then 2 processes (torchrun, gloo, DDP replicas), on an MLP of
--params parameters with Adam state (state to save ≈ 3 × params × 4 bytes per rank):

1. blocking time of one save (steady state, median of --reps; vlcc's first
   save, which allocates the memory tier's buffers, is reported apart):
   vlcc.torch ``save()`` vs ``torch.save`` (rank 0 writes, as DeepSpeed's
   default engine does for replicated state) and vs ``dcp.async_save``
   (FileSystemWriter) — the time until training may continue;
2. time until durable: vlcc ``save()`` + ``wait()`` vs ``torch.save`` + fsync
   vs ``dcp.async_save`` until its future completes;
3. training slowdown: --steps steps with a vlcc save every --every steps vs
   the same steps without saves (before and after, averaged);
4. bytes of a frozen fine-tune version (body frozen, a new optimizer on the
   small head) / bytes of a full version (the first one, every byte new).
Times are the slowest rank's. Prints ratios and one SUMMARY line.
"""

from __future__ import annotations

import argparse
import json
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
import vlcc  # noqa: E402
import vlcc.torch as vt  # noqa: E402
from vlcc.repo.fsutil import fsync_file as fsync_path  # noqa: E402


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


def timed(fn) -> float:
    barrier()
    t0 = time.perf_counter()
    fn()
    barrier()
    return slowest(time.perf_counter() - t0)


def build(params: float, width: int = 4096):
    layers = max(2, round(params / (width * width + width)))
    torch.manual_seed(0)
    # a body of square layers and a small head (the part a fine-tune trains)
    model = torch.nn.Sequential(*[torch.nn.Linear(width, width) for _ in range(layers)],
                                torch.nn.Linear(width, 64))
    return model, width


def version_bytes(repo: str, vid: str) -> int:
    total = 0
    for root, _d, files in os.walk(os.path.join(repo, "data", vid)):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


def run(a, out_json: str) -> None:
    n = dist.get_world_size() if dist.is_initialized() else 1
    model, width = build(a.params, a.width)
    nparams = sum(p.numel() for p in model.parameters())
    net = torch.nn.parallel.DistributedDataParallel(model) if n > 1 else model
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.randn(a.batch, width)

    def step():
        loss = net(x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    root = a.dir
    if rank() == 0:
        os.makedirs(root, exist_ok=True)
    barrier()
    state_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values()) + sum(
        t.numel() * t.element_size() for s in opt.state_dict()["state"].values()
        for t in s.values() if isinstance(t, torch.Tensor))

    res = {"nprocs": n, "params": nparams, "state_mib": state_bytes / 2**20}

    # -- torch.save (rank 0 writes the replicated state) ------------------------------
    ts, tsf = [], []
    for i in range(a.reps):
        f = os.path.join(root, f"torch_{i}.pt")

        def save():
            if rank() == 0:
                torch.save({"model": model.state_dict(), "optim": opt.state_dict()}, f)
        ts.append(timed(save))

        def save_sync():
            if rank() == 0:
                torch.save({"model": model.state_dict(), "optim": opt.state_dict()}, f)
                fsync_path(f)
        tsf.append(timed(save_sync))
        barrier()
        if rank() == 0:
            os.remove(f)
    res["torch_save"], res["torch_save_fsync"] = statistics.median(ts), statistics.median(tsf)

    # -- dcp.async_save (FileSystemWriter) ---------------------------------------------
    import torch.distributed.checkpoint as dcp
    pg = dist.new_group(backend="gloo") if n > 1 else None
    tb, td = [], []
    for i in range(a.reps):
        d = os.path.join(root, f"dcp_{i}")
        holder = {}

        def start():
            holder["f"] = dcp.async_save({"model": model.state_dict(), "optim": opt.state_dict()},
                                         checkpoint_id=d, process_group=pg)
        t0 = time.perf_counter()
        tb.append(timed(start))
        holder["f"].result()
        td.append(slowest(time.perf_counter() - t0))
        barrier()
        if rank() == 0:
            shutil.rmtree(d, ignore_errors=True)
    res["dcp_async_block"], res["dcp_async_durable"] = statistics.median(tb), statistics.median(td)

    # -- vlcc.torch ------------------------------------------------------------------------
    repo = os.path.join(root, "vlcc")
    opts = {"memory_budget": a.memory_budget} if a.memory_budget else {}
    ck = vt.Checkpointer(repo, model, opt, **opts)
    vb, vd = [], []
    # The first captures allocate the memory tier's buffers (page faults, reported
    # apart): a version's buffers return to the pool when it is evicted, which
    # happens after the next capture, so saves are fault-free from the fourth on.
    first = []
    for w in range(3):
        t0 = time.perf_counter()
        first.append(timed(lambda: ck.save(w)))
        ck.wait()
    res["vlcc_first_block"] = first[0]
    full_vid = ck.log()[-1].id       # the first version: every byte is new
    for i in range(a.reps):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1e-3)        # new bytes each time: no dedup against the parent
        t0 = time.perf_counter()
        vb.append(timed(lambda: ck.save(i + 1)))
        ck.wait()
        vd.append(slowest(time.perf_counter() - t0))
    res["vlcc_block"], res["vlcc_durable"] = statistics.median(vb), statistics.median(vd)
    base_vid = ck.core.last_version.id

    # -- training slowdown -------------------------------------------------------------------
    def loop(save_every):
        def body():
            for s in range(a.steps):
                step()
                if save_every and (s + 1) % save_every == 0:
                    ck.save(1000 + s)
            ck.wait()
        return timed(body)
    base1 = loop(0)
    with_saves = loop(a.every)
    base2 = loop(0)
    base = (base1 + base2) / 2
    res["step_seconds"] = base / a.steps
    res["slowdown"] = with_saves / base - 1

    # -- frozen fine-tune ----------------------------------------------------------------------
    ck.wait()
    ck.branch("finetune", at=base_vid)
    ck.close()
    layers = list(model)
    for lay in layers[:-1]:
        for p in lay.parameters():
            p.requires_grad_(False)
    ft_opt = torch.optim.Adam(layers[-1].parameters(), lr=1e-4)
    with vt.Checkpointer(repo, model, branch="finetune") as ck_load:
        ck_load.load()
    ft_net = torch.nn.parallel.DistributedDataParallel(model) if n > 1 else model
    loss = ft_net(x).square().mean()
    ft_opt.zero_grad()
    loss.backward()
    ft_opt.step()
    with vt.Checkpointer(repo, model, ft_opt, branch="finetune", **opts) as ck_ft:
        ft = ck_ft.save(2000, "fine-tune, frozen body")
        ck_ft.wait()
    if rank() == 0:
        res["full_bytes"] = version_bytes(repo, full_vid)
        res["finetune_bytes"] = version_bytes(repo, ft.id)
        res["finetune_ratio"] = res["finetune_bytes"] / res["full_bytes"]
        with open(out_json, "w") as f:
            json.dump(res, f)
    barrier()


def child(a) -> None:
    dist.init_process_group("gloo")
    try:
        run(a, a.out)
    finally:
        dist.destroy_process_group()


def report(res: dict) -> None:
    n = res["nprocs"]
    print(f"\n== {n} process(es): {res['params'] / 1e6:.1f} M parameters, "
          f"{res['state_mib']:.0f} MiB state per rank (model + Adam)")
    print(f"  blocking   vlcc save {res['vlcc_block']:.3f} s | torch.save {res['torch_save']:.3f} s "
          f"| dcp.async_save {res['dcp_async_block']:.3f} s")
    print(f"             vlcc/torch.save = {res['vlcc_block'] / res['torch_save']:.3f}x (goal <= 0.2x), "
          f"vlcc/dcp.async_save = {res['vlcc_block'] / res['dcp_async_block']:.3f}x (goal <= 1.0x)")
    print(f"             (first save, fresh memory-tier buffers: {res['vlcc_first_block']:.3f} s)")
    print(f"  durable    vlcc save+wait {res['vlcc_durable']:.3f} s | torch.save+fsync "
          f"{res['torch_save_fsync']:.3f} s | dcp.async_save done {res['dcp_async_durable']:.3f} s")
    print(f"             vlcc/(torch.save+fsync) = {res['vlcc_durable'] / res['torch_save_fsync']:.3f}x "
          f"(goal <= 1.0x)")
    print(f"  training   {res['step_seconds']:.3f} s/step; slowdown with a save every k steps "
          f"{100 * res['slowdown']:+.1f} % (goal <= 5 %)")
    print(f"  fine-tune  frozen version {res['finetune_bytes'] / 2**20:.2f} MiB / full "
          f"{res['full_bytes'] / 2**20:.1f} MiB = {res['finetune_ratio']:.4f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", type=float, default=50e6)
    ap.add_argument("--width", type=int, default=4096, help="layer width of the MLP")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--memory-budget", default=None,
                    help="vlcc memory tier per rank (default: room for two versions)")
    ap.add_argument("--nprocs", type=int, nargs="+", default=[1, 2])
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
                ns = argparse.Namespace(**vars(a) | {"dir": d})
                run(ns, out)
            else:
                env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
                cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                       "--nproc-per-node", str(n), os.path.abspath(__file__), "--child",
                       "--out", out, "--dir", d, "--params", str(a.params), "--width", str(a.width), "--batch", str(a.batch),
                       "--steps", str(a.steps), "--every", str(a.every), "--reps", str(a.reps),
                       ] + (["--memory-budget", a.memory_budget] if a.memory_budget else [])
                subprocess.run(cmd, env=env, check=True)
            with open(out) as f:
                results.append(json.load(f))
            report(results[-1])
            shutil.rmtree(d, ignore_errors=True)
    finally:
        shutil.rmtree(top, ignore_errors=True)
    parts = []
    for r in results:
        parts.append(f"n={r['nprocs']}: block {r['vlcc_block'] / r['torch_save']:.3f}x torch.save "
                     f"{r['vlcc_block'] / r['dcp_async_block']:.3f}x dcp.async_save, durable "
                     f"{r['vlcc_durable'] / r['torch_save_fsync']:.3f}x torch.save+fsync, slowdown "
                     f"{100 * r['slowdown']:+.1f}%, frozen/full {r['finetune_ratio']:.4f}")
    print(f"\nSUMMARY bench_torch params={results[0]['params'] / 1e6:.1f}M: " + "; ".join(parts))


if __name__ == "__main__":
    main()
