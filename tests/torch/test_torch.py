"""vlcc.torch in one process: backtracking bit-exact, async capture, branches,
frozen fine-tunes, bad input, the DCP plugin and the DeepSpeed engine."""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import vlcc  # noqa: E402
import vlcc.torch as vt  # noqa: E402
from torch_helpers import (frozen_finetune, hold_flushes, index_bytes, make, same_tensors, train_step,  # noqa: E402
                           version_bytes)
from conftest import TESTS_DIR  # noqa: E402


def test_backtrack_repeats_losses_bit_exact(tmp_path):
    model, opt, sched = make()
    extra = {"epoch": 3}
    with vt.Checkpointer(tmp_path / "r", model, opt, sched, extra=extra) as ck:
        for _ in range(4):
            train_step(model, opt, sched)
        v = ck.save(4, "before the spike", attrs={"lr": 1e-2})
        params = copy.deepcopy(model.state_dict())
        ref = [train_step(model, opt, sched) for _ in range(5)]
        extra["epoch"] = 99
        ck.load(v.id)          # back in the same process (from vlcc's memory tier)
        assert same_tensors(model.state_dict(), params)
        assert extra["epoch"] == 3
        assert [train_step(model, opt, sched) for _ in range(5)] == ref

    # a fresh process-like start: new objects with other initial values
    model2, opt2, sched2 = make(seed=123)
    extra2 = {}
    with vt.Checkpointer(tmp_path / "r", model2, opt2, sched2, extra=extra2) as ck2:
        got = ck2.load(v.id)
        assert got.id == v.id and got.step == 4 and got.attrs == {"lr": 1e-2}
        assert same_tensors(model2.state_dict(), params)
        assert extra2 == {"epoch": 3}
        assert [train_step(model2, opt2, sched2) for _ in range(5)] == ref


def _assert_version_holds(repo_dir, vid, snap_model, snap_opt):
    """The stored model and optimizer state of ``vid`` equal the snapshots taken at save()."""
    repo = vlcc.Repository(repo_dir)
    for n, t in snap_model.items():
        np.testing.assert_array_equal(repo.read(vid, f"model/{n}"), t.numpy())
    for i, s in snap_opt.items():
        for key, t in s.items():
            np.testing.assert_array_equal(repo.read(vid, f"optim/state/{i}/{key}"), t.numpy())


def test_async_capture_is_safe_against_the_next_step(tmp_path):
    model, opt, _ = make(width=64)
    train_step(model, opt)
    with vt.Checkpointer(tmp_path / "r", model, opt, mode="async") as ck:
        for k in range(3):
            snap_model = {n: t.clone() for n, t in model.state_dict().items()}
            snap_opt = {i: {key: t.clone() for key, t in s.items()}
                        for i, s in opt.state_dict()["state"].items()}
            v = ck.save(k)
            assert v.pending
            # training continues at once and mutates everything in place
            train_step(model, opt)
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(1.0)
            ck.wait()
            _assert_version_holds(tmp_path / "r", v.id, snap_model, snap_opt)


def test_branch_lineage_and_log(tmp_path):
    model, opt, sched = make()
    with vt.Checkpointer(tmp_path / "r", model, opt, sched) as ck:
        train_step(model, opt, sched)
        v1 = ck.save(1)
        train_step(model, opt, sched)
        v2 = ck.save(2)
        ck.branch("lr-small", at=v1)
        ck.switch("lr-small")
        assert ck.load().id == v1.id          # latest of the new branch
        for g in opt.param_groups:
            g["lr"] = 1e-4
        train_step(model, opt, sched)
        v3 = ck.save(2, "smaller lr")
        ck.tag("best")
        ck.wait()
        assert [v.id for v in ck.log("lr-small")] == [v3.id, v1.id]
        assert [v.id for v in ck.log("main")] == [v2.id, v1.id]
    repo = vlcc.Repository(tmp_path / "r")
    assert repo.resolve("tag:best").id == v3.id
    assert repo.resolve(v3.id).parent == v1.id and repo.resolve(v3.id).branch == "lr-small"
    assert repo.read(v3.id, "optim/param_groups")[0]["lr"] == 1e-4


def test_frozen_finetune_adds_little(tmp_path):
    torch.manual_seed(0)
    body = torch.nn.Sequential(*[torch.nn.Linear(256, 256) for _ in range(3)])
    head = torch.nn.Linear(256, 4)
    model = torch.nn.Sequential(body, head)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(o):
        loss = model(torch.randn(8, 256)).square().mean()
        o.zero_grad()
        loss.backward()
        o.step()

    path = str(tmp_path / "r")
    with vt.Checkpointer(path, model, opt) as ck:
        step(opt)
        base = ck.save(1, "pretrained")
        ck.wait()
    for p in body.parameters():
        p.requires_grad_(False)
    ft_opt = torch.optim.Adam(head.parameters(), lr=1e-3)
    with vt.Checkpointer(path, model) as ck:   # model only: load the pretrained weights
        ck.branch("finetune", at=base)
        ck.switch("finetune")
        ck.load()
    with vt.Checkpointer(path, model, ft_opt, branch="finetune") as ck:
        step(ft_opt)
        ft = ck.save(2, "head only")
        ck.wait()
    full, small = version_bytes(path, base.id), version_bytes(path, ft.id)
    assert small <= 0.10 * full, (small, full)
    repo = vlcc.Repository(path)
    np.testing.assert_array_equal(repo.read(ft.id, "model/0.0.weight"),
                                  repo.read(base.id, "model/0.0.weight"))
    assert repo.resolve(ft.id).parent == base.id


@pytest.mark.parametrize("flush_mpi", ["auto", "0"])
def test_frozen_layers_dedup_while_parent_in_flight(tmp_path, monkeypatch, flush_mpi):
    """Async saves of a frozen fine-tune store what sync saves store, also
    when a version is captured while its parent is still being flushed (the
    flushes are held until both are saved): the frozen body is referenced,
    never written twice. ``VLCC_FLUSH_MPI=0``: the application's thread
    prepares (its dedup parent is the in-flight plan); ``auto``: the flusher."""
    monkeypatch.setenv("VLCC_FLUSH_MPI", flush_mpi)
    frozen, sync = frozen_finetune(str(tmp_path / "sync"), "sync")
    gate = hold_flushes(monkeypatch)
    _, asyn = frozen_finetune(str(tmp_path / "async"), "async", gate=gate)
    assert sync["reused_bytes"] >= frozen and asyn["reused_bytes"] == sync["reused_bytes"], (sync, asyn)
    assert asyn["new_chunk_bytes"] == sync["new_chunk_bytes"] < frozen / 4, (sync, asyn)
    # the rest is the index files (their sizes may differ by a few bytes)
    index = index_bytes(sync["path"])
    assert abs(asyn["stored_bytes"] - sync["stored_bytes"]) <= index, (sync, asyn)


def test_bad_input_clear_error_and_nothing_modified(tmp_path):
    model, opt, sched = make()
    train_step(model, opt, sched)
    with vt.Checkpointer(tmp_path / "r", model, opt, sched) as ck:
        v = ck.save(1)

    # other parameter names
    other = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU())
    other.add_module("head", torch.nn.Linear(16, 2))
    o2 = torch.optim.Adam(other.parameters())
    train_step(other, o2)
    before = copy.deepcopy(other.state_dict())
    before_opt = copy.deepcopy(o2.state_dict())
    with vt.Checkpointer(tmp_path / "r", other, o2) as ck:
        with pytest.raises(vlcc.MissingProviderError, match=r"parameter .head\.(weight|bias). .*provider .model/head"):
            ck.load(v.id)
    assert same_tensors(other.state_dict(), before)
    assert same_tensors(o2.state_dict()["state"][0], before_opt["state"][0])

    # other shapes
    wide, o3, s3 = make(width=32)
    before = copy.deepcopy(wide.state_dict())
    with vt.Checkpointer(tmp_path / "r", wide, o3, s3) as ck:
        with pytest.raises(vlcc.ShapeMismatchError, match=r"0\.weight.*\(16, 8\).*\(32, 8\)"):
            ck.load(v.id)
    assert same_tensors(wide.state_dict(), before)
    assert o3.state_dict()["state"] == {}

    # save after close
    ck = vt.Checkpointer(tmp_path / "r", model, opt)
    ck.close()
    with pytest.raises(vlcc.VlccError, match="closed"):
        ck.save(2)
    assert [x.id for x in vlcc.Repository(tmp_path / "r").log()] == [v.id]


def test_dtypes_numpy_lacks_and_buffers(tmp_path):
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4)).to(torch.bfloat16)
    model(torch.randn(3, 4, dtype=torch.bfloat16))        # moves BatchNorm running stats
    saved = copy.deepcopy(model.state_dict())
    with vt.Checkpointer(tmp_path / "r", model) as ck:
        v = ck.save(0)
        with torch.no_grad():
            for t in model.state_dict().values():
                t.zero_()
        ck.load(v.id)
    assert same_tensors(model.state_dict(), saved)
    meta = vlcc.Repository(tmp_path / "r").read(v.id, "torch/meta")
    assert meta["dtypes"]["model/0.weight"] == "bfloat16"


def test_dcp_save_async_save_load(tmp_path):
    import torch.distributed.checkpoint as dcp
    model, opt, _ = make()
    train_step(model, opt)
    sd = {"model": model.state_dict(), "optim": opt.state_dict(), "step": 7}
    path = str(tmp_path / "r")
    w1 = vt.StorageWriter(path, message="dcp sync")
    dcp.save(sd, storage_writer=w1)
    train_step(model, opt)
    sd = {"model": model.state_dict(), "optim": opt.state_dict(), "step": 8}
    expect = copy.deepcopy(sd)
    w2 = vt.StorageWriter(path, message="dcp async")
    dcp.async_save(sd, storage_writer=w2).result()
    repo = vlcc.Repository(path)
    assert [v.message for v in repo.log()] == ["dcp async", "dcp sync"]
    assert repo.resolve(w2.version.id).parent == w1.version.id

    m2, o2, _ = make(seed=5)
    train_step(m2, o2)
    target = {"model": m2.state_dict(), "optim": o2.state_dict(), "step": 0}
    dcp.load(target, storage_reader=vt.StorageReader(path))
    assert target["step"] == 8
    assert same_tensors(target["model"], expect["model"])
    assert same_tensors(target["optim"]["state"][1], expect["optim"]["state"][1])
    old = {"model": m2.state_dict()}
    dcp.load(old, storage_reader=vt.StorageReader(path, spec=w1.version.id))
    assert not same_tensors(old["model"], expect["model"])


def test_deepspeed_save_load_bit_exact(tmp_path, monkeypatch):
    pytest.importorskip("deepspeed")
    for k, v in dict(DS_ACCELERATOR="cpu", MASTER_ADDR="127.0.0.1", RANK="0", WORLD_SIZE="1",
                     LOCAL_RANK="0").items():
        monkeypatch.setenv(k, v)
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        monkeypatch.setenv("MASTER_PORT", str(s.getsockname()[1]))
    import deepspeed
    import vlcc.torch.deepspeed as vds

    def engine(seed):
        m, o, _ = make(seed=seed)
        e, *_ = deepspeed.initialize(model=m, optimizer=o,
                                     config={"train_batch_size": 4, "steps_per_print": 10**6})
        return e

    def step(e):
        x, y = torch.randn(4, 8), torch.randn(4, 2)
        loss = ((e(x) - y) ** 2).mean()
        e.backward(loss)
        e.step()
        return loss.item()

    repo, save_dir = str(tmp_path / "r"), str(tmp_path / "ckpt")
    try:
        _deepspeed_roundtrip(engine, step, vds, repo, save_dir)
    finally:   # deepspeed.initialize set up a one-process group: leave none behind
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _deepspeed_roundtrip(engine, step, vds, repo, save_dir):
    e = engine(0)
    ce = vds.attach(e, repo)
    for _ in range(3):
        step(e)
    e.save_checkpoint(save_dir, tag="step3")
    model_sd = copy.deepcopy(e.module.state_dict())
    opt_sd = copy.deepcopy(e.optimizer.state_dict())
    rng = torch.get_rng_state()
    ref = [step(e) for _ in range(3)]
    ce.wait()
    v = vlcc.Repository(repo).resolve("tag:step3")
    assert v.attrs["deepspeed_tag"] == "step3" and v.step == 3

    e2 = engine(7)
    vds.attach(e2, repo)
    e2.load_checkpoint(save_dir, tag="step3")
    assert same_tensors(e2.module.state_dict(), model_sd)
    for i, st in opt_sd["state"].items():
        assert same_tensors(e2.optimizer.state_dict()["state"][i], st)
    torch.set_rng_state(rng)
    assert [step(e2) for _ in range(3)] == ref


def test_backtrack_example_runs(tmp_path, monkeypatch, capsys):
    """examples/ai/backtrack.py end to end (in this process: torch is imported)."""
    import importlib.util
    path = os.path.join(os.path.dirname(TESTS_DIR),
                        "examples", "ai", "backtrack.py")
    spec = importlib.util.spec_from_file_location("backtrack_example", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    repo = str(tmp_path / "bt")
    monkeypatch.setattr("sys.argv", ["backtrack.py", "--repo", repo])
    assert mod.main() == 0
    out = capsys.readouterr().out
    assert "spikes" in out and "diverged" in out
    r = vlcc.Repository(repo)
    assert set(r.branches()) == {"main", "lr-small", "finetune"}
    main_head = r.resolve("branch:main")
    assert "diverged" in main_head.message
    lr_small = r.log("lr-small")
    # the lr-small branch starts at the last main version before the spike
    first_lr = [v for v in lr_small if v.branch == "lr-small"][-1]
    assert first_lr.parent == main_head.parent
    assert r.resolve("tag:lr-small-final").branch == "lr-small"
    # every fine-tune version (async, saved while the previous one may be in
    # flight) references the frozen body: it stores only the head and index
    ft = [v.id for v in r.log("finetune") if v.branch == "finetune"]
    du = [e for e in r.du()["versions"] if e["id"] in ft]
    assert len(du) == 2 and all(e["reused_bytes"] >= 256 * 256 * 4 and
                                e["stored_bytes"] < 64 * 1024 for e in du), du
    assert "fine-tune version" in out and "reused" in out


def _no_torch_objects(obj, where):
    """Plain containers of numpy arrays, str, int, float, bool, None, bytes only."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            assert isinstance(k, (str, int)), (where, k)
            _no_torch_objects(v, f"{where}[{k!r}]")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _no_torch_objects(v, f"{where}[{i}]")
    else:
        assert obj is None or isinstance(obj, (np.ndarray, np.generic, str, int, float, bool, bytes)), \
            (where, type(obj))


def test_values_are_plain_and_tensors_in_them_come_back(tmp_path):
    """Values vlcc.torch stores (RNG states, param_groups, scalars, scheduler,
    extra) hold no torch objects (a safe, non-pickle encoding can store them);
    tensors inside ``extra`` are stored as numpy and come back as tensors."""
    model, opt, sched = make()
    train_step(model, opt, sched)
    t = torch.arange(6, dtype=torch.bfloat16).reshape(2, 3)
    extra = {"t": t, "pos": (3, [1, 2]), "cfg": {"name": "x", "none": None, "raw": b"ab"}}
    path = str(tmp_path / "r")
    with vt.Checkpointer(path, model, opt, sched, extra=extra) as ck:
        v = ck.save(1)
        ck.wait()
        repo = vlcc.Repository(path)
        for name in ("rng", "optim/param_groups", "optim/scalars", "scheduler", "extra", "torch/meta"):
            _no_torch_objects(repo.read(v.id, name), name)
        extra.clear()
        ck.load(v.id)
    assert torch.equal(extra["t"], t) and extra["t"].dtype == torch.bfloat16
    assert list(extra["pos"][1]) == [1, 2] and extra["cfg"] == {"name": "x", "none": None, "raw": b"ab"}


def test_lazy_capture_waits_before_the_optimizer_step(tmp_path, monkeypatch):
    """Async saves copy parameters and optimizer state in the background; the
    optimizer step right after ``save()`` waits for that copy (a slowed-down
    copy makes the race certain): the version holds the state at save()."""
    import time
    import vlcc.engine.engine as engine
    real = engine._copy_all

    def slow(jobs):
        time.sleep(0.5)
        real(jobs)
    monkeypatch.setattr(engine, "_copy_all", slow)
    model, opt, _ = make(width=64)
    train_step(model, opt)
    with vt.Checkpointer(tmp_path / "r", model, opt, mode="async") as ck:
        snap = {n: t.clone() for n, t in model.state_dict().items()}
        snap_opt = {i: {k: t.clone() for k, t in s.items()} for i, s in opt.state_dict()["state"].items()}
        v = ck.save(1)
        train_step(model, opt)          # the step pre-hook settles the copy first
        ck.settle()
        with torch.no_grad():           # changed outside the optimizer: after settle()
            for p in model.parameters():
                p.mul_(2.0)
        ck.wait()
        _assert_version_holds(tmp_path / "r", v.id, snap, snap_opt)


def test_host_slots_and_stager_on_cpu():
    """The bookkeeping of the CUDA path that runs on a CPU: a CPU tensor's slot
    is a numpy view of its memory (no mirror), kept while the tensor keeps its
    storage/shape/dtype and made anew when the optimizer replaces it; bfloat16
    is viewed as uint16; the stager does nothing without device tensors (the
    device → pinned host copies themselves run only on a GPU)."""
    from vlcc.torch.tensors import DeviceStager, host_slot
    t = torch.arange(6, dtype=torch.float32)
    s = host_slot(t)
    assert not s.on_device and np.shares_memory(s.array, t.numpy())
    assert host_slot(t, s) is s
    t2 = t.clone()
    s2 = host_slot(t2, s)
    assert s2 is not s and np.shares_memory(s2.array, t2.numpy())
    b = torch.ones(4, dtype=torch.bfloat16)
    sb = host_slot(b)
    assert sb.array.dtype.itemsize == 2 and sb.array.view(np.uint16)[0] == 0x3F80   # same bits
    st = DeviceStager()
    st.to_host([s, sb])
    st.to_device([s, sb])
    assert st._stream is None     # no CUDA stream was made
