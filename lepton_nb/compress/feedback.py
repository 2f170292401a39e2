"""Error feedback: what compression dropped is added back into the next step.

``ErrorFeedback(c).compress(t, key)`` sends ``C(t + residual[key])`` and keeps
``residual[key] = (t + residual) - D(C(t + residual))``. Each codec does this
in fused kernels: for top-k one parallel pass adds t into the residual while it
collects the candidates, and after selecting exactly k the residual is zeroed
at the k sent positions; int8 and fp16 quantise and subtract in the same pass.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

import numpy as np

from .compressors import Codec, arrays
from .payload import Payload
from .tensors import flatten, is_tensor, torch_module

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .tensors import DType

NOT_A_COMPRESSOR = "ErrorFeedback wraps a TopK, Int8 or FP16 compressor, got {type}"


class ErrorFeedback:
    """Wrap ``compressor`` so that each tensor's compression error is fed back.

    Residuals are kept per ``key`` (e.g. a parameter name), float32, with the
    shape, kind (numpy or torch) and device of the tensor last compressed under
    that key; one whose shape no longer matches starts again from zeros. A
    :class:`~.protocol.FeedbackCompressor`: ``state_dict`` saves the residuals.
    """

    def __init__(self, compressor: Codec) -> None:
        if not isinstance(compressor, Codec):
            raise TypeError(NOT_A_COMPRESSOR.format(type=type(compressor).__name__))
        self.compressor = compressor
        self.residuals: dict[Hashable, Any] = {}

    def compress(self, t: Any, key: Hashable) -> Payload:
        """Compress ``t`` plus the residual under ``key``; keep the new residual."""
        flat = flatten(t)
        residual = self._residual(key, t, flat.shape)
        r = residual.reshape(-1)
        c = self.compressor
        p = c.layout(flat.shape, flat.dtype, flat.device)
        c.feedback(c.twin(flat.device is not None), r, flat.data, arrays(p))
        return p

    def _residual(self, key: Hashable, t: Any, shape: tuple[int, ...]) -> Any:
        """The residual for ``key`` as t's kind and device, zeros if missing or reshaped."""
        r = self.residuals.get(key)
        if is_tensor(t):
            torch = torch_module()
            if r is not None and not is_tensor(r):
                r = torch.from_numpy(r)
            if r is None or tuple(r.shape) != shape:
                r = torch.zeros(shape, dtype=torch.float32, device=t.device)
            r = r.to(t.device, torch.float32).contiguous()
        else:
            if is_tensor(r):
                r = r.detach().cpu().numpy()
            if r is None or r.shape != shape:
                r = np.zeros(shape, np.float32)
            r = np.ascontiguousarray(r, dtype=np.float32)
        self.residuals[key] = r
        return r if not is_tensor(r) or r.is_cuda else r.numpy()

    def decompress(self, p: Payload) -> Any:
        """As the wrapped compressor's."""
        return self.compressor.decompress(p)

    def accumulate(self, p: Payload, out: Any) -> None:
        """As the wrapped compressor's: ``out += decompress(p)``."""
        self.compressor.accumulate(p, out)

    def payload_nbytes(self, numel: int) -> int:
        """As the wrapped compressor's."""
        return self.compressor.payload_nbytes(numel)

    def layout(
        self, shape: tuple[int, ...], dtype: DType, device: torch.device | None = None
    ) -> Payload:
        """As the wrapped compressor's: an empty payload of the right size."""
        return self.compressor.layout(shape, dtype, device)

    empty = layout

    def state_dict(self) -> dict[str, Any]:
        """The residuals, copied to host memory (torch tensors stay tensors)."""
        out = {}
        for key, r in self.residuals.items():
            out[key] = r.detach().cpu().clone() if is_tensor(r) else r.copy()
        return {"residuals": out}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore residuals saved by :meth:`state_dict`."""
        self.residuals = {}
        for key, r in state["residuals"].items():
            self.residuals[key] = r.detach().clone() if is_tensor(r) else np.array(r, np.float32)

    def __repr__(self) -> str:
        return f"ErrorFeedback({self.compressor!r})"
