"""Pipeline parallel, on a rank: an ``nn.Sequential`` split into one stage per rank.

Stages are contiguous runs of layers balanced by parameter count. Each batch is
cut into micro-batches that flow forward stage to stage with point-to-point
sends, then their gradients flow back (the GPipe schedule). Each micro-batch's
loss is weighted by its share of the batch, so one step equals a step on the
whole batch in one process.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from .. import links
from . import options
from .parallel import correct

HEADER = 8  # an activation's shape travels first: [ndim, d0, d1, ...], padded


def balance(sizes: list[int], stages: int) -> list[tuple[int, int]]:
    """Split layers with parameter counts ``sizes`` into ``stages`` contiguous, non-empty runs.

    Minimises the largest stage's parameter count (ties: earlier cuts).
    """
    n = len(sizes)
    if not 1 <= stages <= n:
        raise ValueError(f"cannot split {n} layers into {stages} stages")
    prefix = [0]
    for s in sizes:
        prefix.append(prefix[-1] + s)
    inf = float("inf")
    # best[k][i]: smallest max-stage size splitting the first i layers into k stages
    best = [[inf] * (n + 1) for _ in range(stages + 1)]
    cut = [[0] * (n + 1) for _ in range(stages + 1)]
    best[0][0] = 0
    for k in range(1, stages + 1):
        for i in range(k, n + 1):
            for j in range(k - 1, i):
                cost = max(best[k - 1][j], prefix[i] - prefix[j])
                if cost < best[k][i]:
                    best[k][i], cut[k][i] = cost, j
    bounds, i = [], n
    for k in range(stages, 0, -1):
        j = cut[k][i]
        bounds.append((j, i))
        i = j
    return bounds[::-1]


class Pipeline:
    """This rank's stage of the model, with its optimizer."""

    def __init__(self, model: torch.nn.Sequential, config: dict[str, Any]) -> None:
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        sizes = [sum(p.numel() for p in layer.parameters()) for layer in model]
        self.bounds = balance(sizes, self.world)
        lo, hi = self.bounds[self.rank]
        self.stage = model[lo:hi]  # keeps the layers' names, so state dicts merge
        self.model = model
        self.params = [p for p in self.stage.parameters() if p.requires_grad]
        self.optimizer = options.make_optimizer(
            config["optimizer"], self.params, config["lr"], False
        )
        self.loss = options.loss_function(config["loss"])
        self.micro = int(config.get("micro_batches") or 4)
        self.first, self.last = self.rank == 0, self.rank == self.world - 1
        params = list(model.parameters())  # the whole model sits on this rank's device
        self.device = params[0].device if params else torch.device("cpu")

    def train_batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, int, int, int]:
        """One step on the batch; metrics come from the last stage (zeros elsewhere)."""
        self.stage.train()
        sent = links.counter.total()
        total = len(x)
        pieces = list(zip(x.split(-(-total // self.micro)), y.split(-(-total // self.micro))))
        kept = []
        loss_sum, right = 0.0, 0
        for xb, yb in pieces:  # forward, every micro-batch
            inp = xb if self.first else self._recv(self.rank - 1).requires_grad_()
            out = self.stage(inp)
            if self.last:
                loss = self.loss(out, yb) * (len(yb) / total)
                loss_sum += float(loss) * total
                right += correct(out.detach(), yb)
                kept.append((inp, loss))
            else:
                self._send(out.detach(), self.rank + 1)
                kept.append((inp, out))
        if self.optimizer is not None:
            self.optimizer.zero_grad(set_to_none=False)
        for inp, out in kept:  # backward, every micro-batch
            if self.last:
                out.backward()
            else:
                out.backward(self._recv(self.rank + 1))
            if not self.first:
                assert inp.grad is not None  # what this stage received requires grad
                self._send(inp.grad, self.rank - 1)
        if self.optimizer is not None:
            self.optimizer.step()
        moved = links.counter.total() - sent
        if not self.last:
            return 0.0, 0, 0, moved
        return loss_sum, right, total, moved

    @torch.no_grad()
    def eval_batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, int, int]:
        """Forward through every stage; (loss sum, correct, examples) on the last stage."""
        self.stage.eval()
        inp = x if self.first else self._recv(self.rank - 1)
        out = self.stage(inp)
        if not self.last:
            self._send(out, self.rank + 1)
            return 0.0, 0, 0
        return float(self.loss(out, y)) * len(x), correct(out, y), len(x)

    def _send(self, t: torch.Tensor, peer: int) -> None:
        t = t.contiguous().float()
        head = torch.zeros(HEADER, dtype=torch.int64)
        head[0] = t.ndim
        head[1 : 1 + t.ndim] = torch.tensor(t.shape)
        dist.send(head.to(t.device), peer)  # NCCL sends only CUDA tensors
        dist.send(t, peer)
        links.count(self.rank, peer, t.nbytes + head.nbytes)

    def _recv(self, peer: int) -> torch.Tensor:
        head = torch.empty(HEADER, dtype=torch.int64, device=self.device)
        dist.recv(head, peer)
        head = head.cpu()
        shape = tuple(int(d) for d in head[1 : 1 + int(head[0])])
        t = torch.empty(shape, device=self.device)
        dist.recv(t, peer)
        return t

    def weights(self) -> dict[str, torch.Tensor]:
        """This stage's part of the model's state dict (global layer names), on the CPU."""
        return {k: v.detach().cpu().clone() for k, v in self.stage.state_dict().items()}

    def checksum(self) -> float:
        return float(sum(p.detach().double().sum() for p in self.stage.parameters()))

    def state(self, rank: int) -> dict[str, Any]:
        """Each stage keeps its own weights and optimizer."""
        opt = self.optimizer.state_dict() if self.optimizer is not None else None
        return {"stage": self.stage.state_dict(), "optimizer": opt}

    def load(self, own: dict[str, Any], first: dict[str, Any]) -> None:
        self.stage.load_state_dict(own["stage"])
        if self.optimizer is not None and own.get("optimizer") is not None:
            self.optimizer.load_state_dict(own["optimizer"])
