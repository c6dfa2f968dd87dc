"""Phases of the 2-process vlcc.torch test (tests/torch/test_torch_dist.py).

  save   (torchrun, 2 ranks, gloo): first rank 0 alone writes a Checkpointer
         version and a DCP checkpoint as one process would (no collectives);
         then both ranks: DDP replicas through vlcc.torch.Checkpointer
         (cross-rank dedup, load on 2 ranks repeats the losses), DCP save of a
         DTensor sharded over 2 ranks, and both 1-process checkpoints loaded
         on 2 ranks (1 → 2)
         the same through replicated=True (the default for a DDP model: each
         tensor written by one rank, the shares balanced),
         and DeepSpeed ZeRO-1 (one optimizer partition file per rank) through
         vlcc.torch.deepspeed, loaded back bit-exact
  load1  (1 process, no process group): the 2-rank versions loaded on 1 process (2 → 1)
"""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import vlcc  # noqa: E402
import vlcc.torch as vt  # noqa: E402
from torch_helpers import make, rank_bytes, same_tensors, train_step  # noqa: E402


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def sharded(shape):
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor
    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    return lambda t: distribute_tensor(t, mesh, [Shard(0)])


def save_one_process(root):
    """Rank 0 alone, as a 1-process run would: no process group is used."""
    model, opt, sched = make(width=64, seed=4)
    train_step(model, opt, sched)
    with vt.Checkpointer(os.path.join(root, "ck1"), model, opt, sched, group=vt.SelfComm()) as ck:
        v = ck.save(1, "one process")
    check(vlcc.Repository(os.path.join(root, "ck1")).resolve(v.id).nranks == 1, "1-process version")
    dcp.save({"w": torch.arange(48, dtype=torch.float32).reshape(12, 4) * 2},
             storage_writer=vt.StorageWriter(os.path.join(root, "dcp1"), message="1 process",
                                             group=vt.SelfComm()),
             no_dist=True)
    return v.id, {n: t.clone() for n, t in model.state_dict().items()}


def load_one_process_versions(root, vid, expect):
    model, opt, sched = make(width=64, seed=3)
    with vt.Checkpointer(os.path.join(root, "ck1"), model, opt, sched) as ck:
        ck.load(vid)
        check(same_tensors(model.state_dict(), expect), "1 → 2: parameters differ")
    full = torch.arange(48, dtype=torch.float32).reshape(12, 4) * 2
    target = {"w": sharded(full.shape)(torch.zeros(12, 4))}
    dcp.load(target, storage_reader=vt.StorageReader(os.path.join(root, "dcp1")))
    r, n = dist.get_rank(), dist.get_world_size()
    rows = 12 // n
    check(torch.equal(target["w"].to_local(), full[r * rows:(r + 1) * rows]), "DCP 1 → 2: shard differs")


def deepspeed_zero1(root):
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import deepspeed
    import vlcc.torch.deepspeed as vds

    def engine(seed):
        m, o, _ = make(seed=seed, width=64)
        e, *_ = deepspeed.initialize(model=m, optimizer=o, config={
            "train_batch_size": 8, "steps_per_print": 10**6, "zero_optimization": {"stage": 1}})
        return e

    def step(e):
        x, y = torch.randn(4, 8), torch.randn(4, 2)
        loss = ((e(x) - y) ** 2).mean()
        e.backward(loss)
        e.step()
        return loss.item()

    repo, save_dir = os.path.join(root, "ds"), os.path.join(root, "ds_ckpt")
    e = engine(0)
    ce = vds.attach(e, repo)
    for _ in range(2):
        step(e)
    e.save_checkpoint(save_dir, tag="s2")
    saved = {k: v.clone() for k, v in e.module.state_dict().items()}
    rng = torch.get_rng_state()
    ref = [step(e) for _ in range(2)]
    ce.wait()
    files = sorted(os.listdir(os.path.join(save_dir, "s2")))
    check(len([f for f in files if f.startswith("zero_pp_rank_")]) == dist.get_world_size(),
          f"one ZeRO partition per rank: {files}")
    e2 = engine(7)
    vds.attach(e2, repo)
    e2.load_checkpoint(save_dir, tag="s2")
    check(same_tensors(e2.module.state_dict(), saved), "DeepSpeed ZeRO-1: module differs after load")
    torch.set_rng_state(rng)
    got = [step(e2) for _ in range(2)]
    check(got == ref, f"DeepSpeed ZeRO-1: losses after load {got} vs {ref}")
    check(vlcc.Repository(repo).resolve("tag:s2").nranks == dist.get_world_size(), "ds version ranks")


def phase_save(root):
    dist.init_process_group("gloo")
    one = save_one_process(root) if dist.get_rank() == 0 else None
    box = [one]
    dist.broadcast_object_list(box, src=0)
    load_one_process_versions(root, *box[0])
    ck_path = os.path.join(root, "ck")
    model, opt, sched = make(width=1024)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    for _ in range(2):
        train_step(ddp, opt, sched)
    # one file per rank (not node files, format 4): rank_bytes counts what each rank wrote
    os.environ["VLCC_NODE_FILES"] = "0"
    with vt.Checkpointer(ck_path, model, opt, sched, extra={"phase": "save"}) as ck:
        check(type(ck.core.comm).__name__ == "TorchComm", f"comm is {type(ck.core.comm)}")
        v = ck.save(2, "ddp")
        ck.wait()
        saved = {n: t.clone() for n, t in model.state_dict().items()}
        ref = [train_step(ddp, opt, sched) for _ in range(3)]
        ck.load(v.id)
        check(same_tensors(model.state_dict(), saved), "load on 2 ranks: parameters differ")
        got = [train_step(ddp, opt, sched) for _ in range(3)]
        check(got == ref, f"losses after load differ: {got} vs {ref}")
    man = vlcc.Repository(ck_path).resolve(v.id)
    check(man.nranks == 2, "nranks")
    check(all(e["replicated"] for n, e in man.providers.items() if n.startswith(("model/", "optim/"))),
          "DDP replicas not recognised as replicated")
    b0, b1 = rank_bytes(ck_path, v.id, 0), rank_bytes(ck_path, v.id, 1)
    check(b1 < 0.25 * b0, f"cross-rank dedup: rank 1 wrote {b1} bytes, rank 0 {b0}")
    if dist.get_rank() == 0:
        torch.save({"vid": v.id, "state": saved, "losses": ref}, os.path.join(root, "expect_ck.pt"))

    # replicated=True, the default for a DDP-wrapped model: each tensor written by one rank
    rep = os.path.join(root, "rep")
    with vt.Checkpointer(rep, ddp, opt, sched) as ck:
        check(ck.replicated, "a DDP model is replicated by default")
        v = ck.save(5, "ddp split")
        saved = {n: t.clone() for n, t in ddp.state_dict().items()}
        ref = [train_step(ddp, opt, sched) for _ in range(3)]
        ck.load(v.id)
        check(same_tensors(ddp.state_dict(), saved), "replicated: parameters differ after load")
        check([train_step(ddp, opt, sched) for _ in range(3)] == ref, "replicated: losses differ")
    man = vlcc.Repository(rep).resolve(v.id)
    check(all(e["kind"] == "distributed" for n, e in man.providers.items()
              if n.startswith(("model/", "optim/state/")) and not n.endswith("/step")),
          "replicated tensors are stored as distributed arrays")
    b0, b1 = rank_bytes(rep, v.id, 0), rank_bytes(rep, v.id, 1)
    check(min(b0, b1) > 0.5 * max(b0, b1), f"replicated: shares not balanced (rank 0 {b0}, rank 1 {b1})")
    if dist.get_rank() == 0:
        torch.save({"vid": v.id, "state": saved}, os.path.join(root, "expect_rep.pt"))

    # DCP: a tensor sharded over the ranks, each rank writes its rows
    full = torch.arange(48, dtype=torch.float32).reshape(12, 4)
    w = vt.StorageWriter(os.path.join(root, "dcp"), message="2 ranks")
    dcp.save({"w": sharded(full.shape)(full), "step": 5}, storage_writer=w)
    man = vlcc.Repository(os.path.join(root, "dcp")).resolve("latest")
    check(man.nranks == 2 and man.message == "2 ranks", "dcp version")
    deepspeed_zero1(root)
    dist.destroy_process_group()


def phase_load1(root):
    expect = torch.load(os.path.join(root, "expect_ck.pt"))
    model, opt, sched = make(width=1024, seed=9)
    extra = {}
    with vt.Checkpointer(os.path.join(root, "ck"), model, opt, sched, extra=extra) as ck:
        ck.load(expect["vid"])
        check(same_tensors(model.state_dict(), expect["state"]), "2 → 1: parameters differ")
        check(extra == {"phase": "save"}, f"extra {extra}")
        got = [train_step(model, opt, sched) for _ in range(3)]
        check(got == expect["losses"], f"2 → 1: losses {got} vs {expect['losses']}")
    # the 2-rank split replicas (saved from a DDP wrapper: keys "module.*") on one process
    rep = torch.load(os.path.join(root, "expect_rep.pt"))
    holder = torch.nn.Module()
    holder.module, _o = make(width=1024, seed=9)[:2]
    with vt.Checkpointer(os.path.join(root, "rep"), holder, _o) as ck:
        ck.load(rep["vid"])
    check(same_tensors(holder.state_dict(), rep["state"]), "replicated 2 → 1: parameters differ")
    target = {"w": torch.zeros(12, 4), "step": 0}
    dcp.load(target, storage_reader=vt.StorageReader(os.path.join(root, "dcp")))
    check(torch.equal(target["w"], torch.arange(48, dtype=torch.float32).reshape(12, 4)),
          "DCP 2 → 1: tensor differs")
    check(target["step"] == 5, "DCP 2 → 1: step")


if __name__ == "__main__":
    phase, root = sys.argv[1], sys.argv[2]
    {"save": phase_save, "load1": phase_load1}[phase](root)
    print(f"phase {phase} ok", flush=True)
