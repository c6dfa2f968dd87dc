"""vlcc for PyTorch: versioned asynchronous checkpoints of a training state,
a torch.distributed.checkpoint (DCP) storage plugin, and a DeepSpeed
checkpoint engine (``vlcc.torch.deepspeed.attach``).

    ck = vlcc.torch.Checkpointer("runs/gpt", model=model, optimizer=opt)
    v = ck.save(step)          # returns after the capture; written in the background
    ck.load(v.id)              # or "latest", "tag:NAME", "branch:NAME"

Provider names: see :mod:`vlcc.torch.state`.
"""

from .checkpointer import Checkpointer
from .comm import SelfComm, TorchComm, resolve_comm

__all__ = ["Checkpointer", "StorageWriter", "StorageReader", "TorchComm", "SelfComm", "resolve_comm"]


def __getattr__(name):
    # The DCP plugin imports torch.distributed.checkpoint (slow): load it on first use.
    if name in ("StorageWriter", "StorageReader"):
        from . import dcp
        return getattr(dcp, name)
    if name == "deepspeed":
        import importlib
        return importlib.import_module(".deepspeed", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
