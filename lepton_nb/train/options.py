"""What ``Trainer`` and ``fit`` accept for compression, optimizer and loss, checked up front."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..compress import (
    FP16,
    Codec,
    ErrorFeedback,
    FeedbackCompressor,
    Int8,
    MomentumCorrection,
    TopK,
)

STRATEGIES = ("data", "pipeline")
OPTIMIZERS = ("sgd", "adam")

#: Momentum of ``optimizer="sgd"`` (in the optimizer, or DGC's momentum correction with top-k).
MOMENTUM = 0.9

BAD_STRATEGY = "strategy must be 'data' or 'pipeline', got {got!r}"
BAD_COMPRESSION = (
    "compression must be None, 'topk:<ratio>' (e.g. 'topk:0.01'), 'int8', 'fp16' or a "
    "compressor from lepton_nb.compress, got {got!r}"
)
BAD_OPTIMIZER = "optimizer must be 'sgd', 'adam' or a callable params -> Optimizer, got {got!r}"
BAD_LOSS = "loss must be None (cross-entropy) or a callable (output, target) -> loss, got {got!r}"
PIPELINE_COMPRESSION = (
    "compression applies to data-parallel gradients; strategy='pipeline' sends activations "
    "between stages uncompressed: use compression=None"
)


def check_strategy(strategy: Any) -> str:
    if strategy not in STRATEGIES:
        raise ValueError(BAD_STRATEGY.format(got=strategy))
    return strategy


def check_compression(spec: Any) -> Any:
    """Validate ``spec`` (raises ValueError); return it unchanged."""
    compressor(spec, "adam")
    return spec


def compressor(spec: Any, optimizer: Any) -> FeedbackCompressor | None:
    """The compressor a rank uses: error feedback always; DGC momentum correction for sgd+top-k."""
    if spec is None:
        return None
    if isinstance(spec, ErrorFeedback):
        return spec
    if isinstance(spec, Codec):
        base = spec
    elif isinstance(spec, str):
        base = _parse(spec)
    else:
        raise ValueError(BAD_COMPRESSION.format(got=spec))
    if isinstance(base, TopK) and optimizer == "sgd":
        return MomentumCorrection(base, MOMENTUM)
    return ErrorFeedback(base)


def _parse(spec: str) -> Codec:
    name, _, arg = spec.strip().lower().partition(":")
    try:
        if name == "topk":
            return TopK(float(arg) if arg else 0.01)
        if name == "int8" and not arg:
            return Int8()
        if name == "fp16" and not arg:
            return FP16()
    except (TypeError, ValueError):
        pass
    raise ValueError(BAD_COMPRESSION.format(got=spec))


def check_optimizer(optimizer: Any) -> Any:
    if optimizer in OPTIMIZERS or (callable(optimizer) and not isinstance(optimizer, str)):
        return optimizer
    raise ValueError(BAD_OPTIMIZER.format(got=optimizer))


def make_optimizer(optimizer: Any, params: list[Any], lr: float, corrected: bool) -> Any:
    """The torch optimizer; with momentum correction, SGD carries no momentum of its own."""
    import torch

    if not params:
        return None
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.0 if corrected else MOMENTUM)
    if optimizer == "adam":
        return torch.optim.Adam(params, lr=lr)
    return optimizer(params)


def check_loss(loss: Any) -> Callable[..., Any] | None:
    if loss is None or callable(loss):
        return loss
    raise ValueError(BAD_LOSS.format(got=loss))


def loss_function(loss: Any) -> Callable[..., Any]:
    import torch

    return loss if loss is not None else torch.nn.functional.cross_entropy
