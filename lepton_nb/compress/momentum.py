"""Momentum correction (Deep Gradient Compression, Lin et al., ICLR 2018).

With top-k, plain momentum in the optimizer applies momentum to the few values
that were sent, and the values held back lose theirs. DGC instead keeps a
velocity per rank, ``u = m * u + g``, feeds *that* through error feedback, and
clears the velocity where values were sent (momentum factor masking)::

    mc = MomentumCorrection(TopK(0.01), momentum=0.9)
    p = mc.compress(grad, key)       # sends top-k of (residual + u); u cleared where sent

The optimizer then takes plain SGD steps (no momentum of its own) on the
averaged payloads. ``Trainer`` uses this for ``optimizer="sgd"`` with top-k.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np

from .compressors import Codec
from .feedback import ErrorFeedback
from .indices import widen
from .payload import Payload
from .tensors import is_tensor

BAD_MOMENTUM = "momentum must be in [0, 1), got {momentum!r}"


class MomentumCorrection(ErrorFeedback):
    """Error feedback on a locally accumulated velocity, masked where values were sent.

    Keeps a velocity per key, ``u = momentum * u + t``, in the attribute
    ``velocities``, and compresses it with :class:`~.feedback.ErrorFeedback`;
    with a :class:`~.compressors.TopK` the velocity is then zeroed where values
    were sent (momentum factor masking).

    Parameters
    ----------
    compressor : Codec
        The codec that compresses: a :class:`~.compressors.TopK` (the case DGC is for),
        :class:`~.compressors.Int8` or :class:`~.compressors.FP16`.
    momentum : float, optional
        The momentum factor ``m``, in [0, 1); default 0.9.

    Raises
    ------
    TypeError
        If ``compressor`` is not a :class:`~.compressors.Codec`.
    ValueError
        If ``momentum`` is not in [0, 1), or is a bool.
    """

    def __init__(self, compressor: Codec, momentum: float = 0.9) -> None:
        super().__init__(compressor)
        if isinstance(momentum, bool) or not 0.0 <= float(momentum) < 1.0:
            raise ValueError(BAD_MOMENTUM.format(momentum=momentum))
        self.momentum = float(momentum)
        self.velocities: dict[Hashable, Any] = {}

    def compress(self, t: Any, key: Hashable) -> Payload:
        """Update the velocity under ``key`` with ``t``, then compress it with error feedback.

        The velocity starts as a copy of ``t`` (numpy input as float32) when ``key`` has
        none, or one of another shape or kind; else it becomes ``momentum * u + t`` in place.
        With top-k it is then zeroed at the positions sent.

        Parameters
        ----------
        t : numpy.ndarray or torch.Tensor
            The gradient: floating-point values of any shape (a torch one may be in CUDA
            memory).
        key : Hashable
            Names the tensor from step to step (e.g. a parameter name): its velocity and
            residual are kept under it.

        Returns
        -------
        Payload
            The compressed ``velocity + residual``. For numpy input it decodes as float32 (the
            velocity's dtype); for torch input, as ``t``'s dtype.

        Raises
        ------
        TypeError
            If ``t`` is a torch tensor that does not hold floats.
        ValueError
            If the wrapped compressor's ``backend`` is ``"cpu"`` and ``t`` is in CUDA memory.
        RuntimeError
            If the CUDA twin is needed but numba.cuda finds no GPU (and no simulator).
        """
        u = self.velocities.get(key)
        if u is None or tuple(u.shape) != tuple(t.shape) or type(u) is not type(t):
            u = t.clone() if is_tensor(t) else np.array(t, np.float32)
        else:
            u *= self.momentum
            u += t
        self.velocities[key] = u
        p = super().compress(u, key)
        if p.codec == "topk":  # momentum factor masking: no momentum for what was sent
            idx = widen(p.arrays["indices"])  # uint16 ones as int32 (torch cannot index uint16)
            flat = u.view(-1) if is_tensor(u) else u.reshape(-1)
            if is_tensor(u):
                import torch

                idx = torch.as_tensor(idx, device=u.device).long()
            flat[idx] = 0
        return p

    def state_dict(self) -> dict[str, Any]:
        """Residuals and velocities, copied to host memory (torch tensors stay tensors).

        Returns
        -------
        dict
            ``{"residuals": {key: residual}, "velocities": {key: velocity}}``.
        """
        state = super().state_dict()
        state["velocities"] = {
            k: v.detach().cpu().clone() if is_tensor(v) else v.copy()
            for k, v in self.velocities.items()
        }
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved, replacing the residuals and velocities.

        Parameters
        ----------
        state : dict
            What :meth:`state_dict` returned. Without ``"velocities"`` (e.g. the state of a
            plain :class:`~.feedback.ErrorFeedback`) every velocity starts afresh.
        """
        super().load_state_dict(state)
        self.velocities = {
            k: v.detach().clone() if is_tensor(v) else np.array(v, np.float32)
            for k, v in state.get("velocities", {}).items()
        }

    def __repr__(self) -> str:
        return f"MomentumCorrection({self.compressor!r}, momentum={self.momentum})"
