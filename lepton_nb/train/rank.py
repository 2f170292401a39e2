"""The Trainer's work on each rank, called through ``cluster.run``.

The notebook pushes the data (``_lepton_train_X`` ...) and the model
(``_lepton_model``) into each rank's namespace; :func:`setup` builds the
strategy from them, and the other functions train, evaluate, checkpoint and
report. State lives in this module between calls.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ..engine import namespace
from . import data
from .parallel import DataParallel, sent_bytes
from .pipeline import Pipeline

_session: dict[str, Any] = {}

NOT_SET_UP = "this rank has no training session; Trainer.fit sets one up"


def _ns() -> dict[str, Any]:
    return namespace.user_namespace()


def setup(config: dict[str, Any]) -> int:
    """Build this rank's strategy from the pushed model; returns the number of parameters."""
    ns = _ns()
    torch.manual_seed(config["seed"])
    model = ns["_lepton_model"]
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"the pushed model is a {type(model).__name__}, not an nn.Module")
    device = _device()
    model.to(device)
    strategy: Pipeline | DataParallel
    if config["strategy"] == "pipeline":
        if not isinstance(model, torch.nn.Sequential):  # the Trainer checked this before sending
            raise TypeError(f"pipeline parallel splits an nn.Sequential, not a {type(model).__name__}")
        strategy = Pipeline(model, config)
    else:
        strategy = DataParallel(model, config)
    _session.clear()
    _session.update(config=config, strategy=strategy, checksums=[], device=device)
    return sum(p.numel() for p in model.parameters())


def _device() -> torch.device:
    """This rank's device: its GPU on a GPU cluster, else the CPU."""
    from ..engine import state

    try:
        return torch.device(state.get_device())
    except RuntimeError:  # not a lepton rank (a bare process group): the CPU
        return torch.device("cpu")


def _strategy() -> Any:
    if "strategy" not in _session:
        raise RuntimeError(NOT_SET_UP)
    return _session["strategy"]


def _tensors(prefix: str, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    ns = _ns()
    X, y = ns[f"_lepton_{prefix}_X"], ns[f"_lepton_{prefix}_y"]
    xb, yb = torch.from_numpy(np.asarray(X[idx])), torch.from_numpy(np.asarray(y[idx]))
    if yb.dtype in (torch.int32, torch.int16, torch.int8, torch.uint8):
        yb = yb.long()
    device = _session.get("device", torch.device("cpu"))
    return xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)


def _indices(epoch: int, n: int) -> np.ndarray:
    cfg = _session["config"]
    if cfg["strategy"] == "pipeline":  # every stage sees every batch, in one order
        return data.order(n, epoch, cfg["seed"])
    return data.shard(n, dist.get_rank(), dist.get_world_size(), epoch, cfg["seed"])


def train_steps(epoch: int, first: int, last: int) -> dict[str, float]:
    """Steps ``first`` .. ``last - 1`` of ``epoch`` on this rank; sums for the notebook."""
    strategy = _strategy()
    cfg = _session["config"]
    torch.manual_seed(cfg["seed"] * 1_000_003 + epoch * 1009 + first)  # dropout etc.
    n = len(_ns()["_lepton_train_X"])
    order = _indices(epoch, n)
    bs = cfg["batch_size"]
    sums = {"loss": 0.0, "correct": 0, "count": 0, "plain": 0, "sent": -sent_bytes()}
    for step in range(first, last):
        x, y = _tensors("train", order[step * bs : (step + 1) * bs])
        loss, right, count, plain = strategy.train_batch(x, y)
        sums["loss"] += loss
        sums["correct"] += right
        sums["count"] += count
        sums["plain"] += plain
        if cfg.get("verify_sync"):
            _session["checksums"].append(strategy.checksum())
    sums["sent"] += sent_bytes()
    return sums


def evaluate(prefix: str) -> dict[str, float]:
    """Loss and accuracy sums over this rank's share of a pushed dataset."""
    strategy = _strategy()
    cfg = _session["config"]
    n = len(_ns()[f"_lepton_{prefix}_X"])
    if cfg["strategy"] == "pipeline":
        idx = np.arange(n)
    else:
        idx = np.arange(dist.get_rank(), n, dist.get_world_size())
    sums = {"loss": 0.0, "correct": 0, "count": 0}
    bs = max(cfg["batch_size"], 256)
    for lo in range(0, len(idx), bs):
        loss, right, count = strategy.eval_batch(*_tensors(prefix, idx[lo : lo + bs]))
        sums["loss"] += loss
        sums["correct"] += right
        sums["count"] += count
    return sums


def steps_per_epoch(n: int) -> int:
    """Steps in one epoch on this rank (the same on every rank)."""
    cfg = _session["config"]
    world = dist.get_world_size()
    count = n if cfg["strategy"] == "pipeline" else n // world
    return data.steps(count, cfg["batch_size"])


def save(folder: str) -> str:
    """Write this rank's part of a checkpoint into ``folder``."""
    rank = dist.get_rank()
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"rank-{rank}.pt")
    torch.save(_strategy().state(rank), path + ".tmp")
    os.replace(path + ".tmp", path)
    return path


def load(folder: str) -> None:
    """Restore this rank (and its error-feedback residuals) from a checkpoint in ``folder``."""
    rank = dist.get_rank()
    own = torch.load(os.path.join(folder, f"rank-{rank}.pt"), weights_only=False)
    first = own if rank == 0 else torch.load(os.path.join(folder, "rank-0.pt"), weights_only=False)
    _strategy().load(own, first)


def weights() -> dict[str, torch.Tensor]:
    """This rank's weights (data parallel: all of them; pipeline: its stage's)."""
    return _strategy().weights()


def checksums() -> list[float]:
    """Weight checksums after each step (kept when ``verify_sync`` is on)."""
    return list(_session.get("checksums", []))


def teardown(names: list[str]) -> None:
    """Drop the session and the pushed names."""
    _session.clear()
    ns = _ns()
    for name in names:
        ns.pop(name, None)
