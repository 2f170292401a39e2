"""Data parallel, on a rank: every rank holds the whole model and trains on its shard.

After each backward pass the gradients, flattened into one buffer, are averaged
with :func:`lepton_nb.collective.allreduce`, compressed with error feedback when
the trainer has a compressor. The average is identical on every rank, so every
rank takes the same optimizer step and holds the same weights.

With a compressor, each parameter of at least :data:`OWN_PART` values is
compressed on its own, and the smaller ones together: top-k then keeps its share
of every large layer, as DGC selects per layer, instead of a share of the whole
that the layer with the largest gradients takes.
"""

from __future__ import annotations

from typing import Any

import torch

from .. import links
from ..collective import allreduce
from ..compress import MomentumCorrection
from . import options

#: Values from which a parameter's gradient is compressed on its own (the rest share one part).
OWN_PART = 1 << 16


def parts(sizes: list[int], own: int = OWN_PART) -> tuple[list[int], list[tuple[int, int]]]:
    """Where each parameter goes in the flat buffer, and the buffer's parts.

    Parameters
    ----------
    sizes : list of int
        The parameters' element counts, in the model's order.
    own : int, optional
        From how many elements a parameter is a part of its own; default :data:`OWN_PART`.

    Returns
    -------
    tuple
        ``(order, bounds)``: the parameters' indices in buffer order (the small ones first,
        in the model's order, then the large ones), and each part's ``(start, stop)``.
    """
    small = [i for i, n in enumerate(sizes) if n < own]
    large = [i for i, n in enumerate(sizes) if n >= own]
    bounds, start = [], 0
    for group in ([small] if small else []) + [[i] for i in large]:
        stop = start + sum(sizes[i] for i in group)
        bounds.append((start, stop))
        start = stop
    return small + large, bounds


class DataParallel:
    """One rank's replica: model, optimizer, compressor and the gradient buffer."""

    def __init__(self, model: torch.nn.Module, config: dict[str, Any]) -> None:
        self.model = model
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.compressor = options.compressor(config["compression"], config["optimizer"])
        corrected = isinstance(self.compressor, MomentumCorrection)
        self.optimizer = options.make_optimizer(
            config["optimizer"], self.params, config["lr"], corrected
        )
        self.loss = options.loss_function(config["loss"])
        device = self.params[0].device if self.params else torch.device("cpu")
        sizes = [p.numel() for p in self.params]
        self.grads = torch.zeros(sum(sizes), device=device)
        self.world = torch.distributed.get_world_size()
        if self.compressor is None:  # one dense reduce of the whole buffer
            order, self.parts = list(range(len(sizes))), [(0, sum(sizes))]
        else:
            order, self.parts = parts(sizes)
        #: each parameter and where its gradient sits in ``grads``
        self.slots: list[tuple[torch.nn.Parameter, int]] = []
        offset = 0
        for i in order:
            self.slots.append((self.params[i], offset))
            offset += sizes[i]

    def train_batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, int, int, int]:
        """One step; returns (loss sum, correct, examples, bytes a plain allreduce would send)."""
        self.model.train()
        out = self.model(x)
        loss = self.loss(out, y)
        self.optimizer.zero_grad(set_to_none=False)
        loss.backward()
        self.average_grads()
        self.optimizer.step()
        plain = 2 * (self.world - 1) * self.grads.nbytes // self.world
        return float(loss) * len(x), correct(out, y), len(x), plain

    def average_grads(self) -> None:
        """Average this rank's gradients with every rank's, in place (each part compressed apart)."""
        for p, offset in self.slots:
            n = p.numel()
            if p.grad is None:
                self.grads[offset : offset + n].zero_()
            else:
                self.grads[offset : offset + n].copy_(p.grad.reshape(-1))
        for i, (start, stop) in enumerate(self.parts):
            allreduce(self.grads[start:stop], self.compressor, op="mean", key=("grads", i))
        for p, offset in self.slots:
            n = p.numel()
            if p.grad is None:
                p.grad = torch.empty_like(p)
            p.grad.copy_(self.grads[offset : offset + n].view_as(p))

    @torch.no_grad()
    def eval_batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, int, int]:
        """(loss sum, correct, examples) without training."""
        self.model.eval()
        out = self.model(x)
        return float(self.loss(out, y)) * len(x), correct(out, y), len(x)

    def weights(self) -> dict[str, torch.Tensor]:
        """The model's state dict (every rank holds all of it), on the CPU."""
        return {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}

    def checksum(self) -> float:
        """A float64 sum over every weight, to compare ranks."""
        return float(sum(p.detach().double().sum() for p in self.model.parameters()))

    def state(self, rank: int) -> dict[str, Any]:
        """What a checkpoint keeps from this rank: the model and optimizer once, residuals each."""
        out: dict[str, Any] = {}
        if rank == 0:
            out["model"] = self.model.state_dict()
            out["optimizer"] = self.optimizer.state_dict() if self.optimizer else None
        if self.compressor is not None:
            out["compressor"] = self.compressor.state_dict()
        return out

    def load(self, own: dict[str, Any], first: dict[str, Any]) -> None:
        """Restore from this rank's checkpoint file and rank 0's (model, optimizer)."""
        self.model.load_state_dict(first["model"])
        if self.optimizer is not None and first.get("optimizer") is not None:
            self.optimizer.load_state_dict(first["optimizer"])
        if self.compressor is not None and "compressor" in own:
            self.compressor.load_state_dict(own["compressor"])


def correct(out: torch.Tensor, y: torch.Tensor) -> int:
    """Examples whose arg-max class is the label (0 when the target is not class labels)."""
    if out.ndim != 2 or y.ndim != 1 or y.dtype.is_floating_point:
        return 0
    return int((out.argmax(1) == y).sum())


def sent_bytes() -> int:
    """Bytes this rank has sent so far (collectives and pipeline sends)."""
    return links.counter.total()
