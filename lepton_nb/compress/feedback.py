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

    Residuals are kept per ``key`` (e.g. a parameter name) in the attribute
    ``residuals``, float32, with the shape, kind (numpy or torch) and device of
    the tensor last compressed under that key; one whose shape no longer matches
    starts again from zeros. A :class:`~.protocol.FeedbackCompressor`:
    ``state_dict`` saves the residuals.

    Parameters
    ----------
    compressor : Codec
        The codec that compresses: a :class:`~.compressors.TopK`,
        :class:`~.compressors.Int8` or :class:`~.compressors.FP16`.

    Raises
    ------
    TypeError
        If ``compressor`` is not a :class:`~.compressors.Codec`.
    """

    def __init__(self, compressor: Codec) -> None:
        if not isinstance(compressor, Codec):
            raise TypeError(NOT_A_COMPRESSOR.format(type=type(compressor).__name__))
        self.compressor = compressor
        self.residuals: dict[Hashable, Any] = {}

    def compress(self, t: Any, key: Hashable) -> Payload:
        """Compress ``t`` plus the residual under ``key``; keep the new residual.

        Sends ``C(t + residual)`` and keeps ``residual = (t + residual) - D(C(t + residual))``,
        in fused kernels.

        Parameters
        ----------
        t : numpy.ndarray or torch.Tensor
            Floating-point values of any shape (float32 for the kernels); a CUDA tensor gives a
            payload in CUDA memory.
        key : Hashable
            Names the tensor from step to step (e.g. a parameter name); its residual starts
            from zeros when missing or of another shape.

        Returns
        -------
        Payload
            The compressed ``t + residual``.

        Raises
        ------
        TypeError
            If ``t`` is not a numpy array or torch tensor, or does not hold floats.
        ValueError
            If the wrapped compressor's ``backend`` is ``"cpu"`` and ``t`` is in CUDA memory.
        RuntimeError
            If the CUDA twin is needed but numba.cuda finds no GPU (and no simulator).
        """
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
        """Decode ``p``, as the wrapped compressor's :meth:`~.compressors.Codec.decompress`.

        Parameters
        ----------
        p : Payload
            A payload of the wrapped compressor's codec.

        Returns
        -------
        numpy.ndarray or torch.Tensor
            The tensor ``p`` encodes: same shape, dtype and kind as the compressed one.

        Raises
        ------
        ValueError
            If ``p`` is not a payload of the wrapped compressor's codec, or if its ``backend``
            is ``"cpu"`` and ``p``'s buffer is in CUDA memory.
        RuntimeError
            If the CUDA twin is needed but numba.cuda finds no GPU (and no simulator).
        """
        return self.compressor.decompress(p)

    def accumulate(self, p: Payload, out: Any) -> None:
        """``out += decompress(p)`` in place, as the wrapped compressor's.

        Parameters
        ----------
        p : Payload
            A payload of the wrapped compressor's codec.
        out : numpy.ndarray or torch.Tensor
            Contiguous float32, with as many elements as ``p``'s tensor.

        Raises
        ------
        ValueError
            If ``p`` is not a payload of the wrapped compressor's codec, if ``out`` is not
            contiguous or has another element count, or if its ``backend`` is ``"cpu"`` and the
            data is in CUDA memory.
        TypeError
            If ``out`` is not a float32 numpy array or torch tensor.
        RuntimeError
            If the CUDA twin is needed but numba.cuda finds no GPU (and no simulator).
        """
        self.compressor.accumulate(p, out)

    def payload_nbytes(self, numel: int) -> int:
        """Bytes of the payload of any tensor of ``numel`` elements, as the wrapped compressor's.

        Parameters
        ----------
        numel : int
            The tensor's element count.

        Returns
        -------
        int
            The payload's size on the wire, in bytes.
        """
        return self.compressor.payload_nbytes(numel)

    def layout(
        self, shape: tuple[int, ...], dtype: DType, device: torch.device | None = None
    ) -> Payload:
        """An empty (uninitialised) payload of the right size, as the wrapped compressor's.

        ``empty`` is another name for this method.

        Parameters
        ----------
        shape : tuple of int
            The tensor's shape.
        dtype : numpy.dtype or torch.dtype
            The tensor's dtype, which decompressing gives back.
        device : torch.device or None, optional
            None (the default) for a numpy buffer, else a torch uint8 tensor on this device.

        Returns
        -------
        Payload
            A payload of the wrapped codec, its buffer allocated but not filled.
        """
        return self.compressor.layout(shape, dtype, device)

    empty = layout

    def state_dict(self) -> dict[str, Any]:
        """The residuals, copied to host memory (torch tensors stay tensors).

        Returns
        -------
        dict
            ``{"residuals": {key: residual}}``, the copies independent of this compressor.
        """
        out = {}
        for key, r in self.residuals.items():
            out[key] = r.detach().cpu().clone() if is_tensor(r) else r.copy()
        return {"residuals": out}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore residuals saved by :meth:`state_dict`, replacing those held now.

        Parameters
        ----------
        state : dict
            What :meth:`state_dict` returned: its ``"residuals"`` are copied in (torch
            tensors as tensors, anything else as float32 numpy arrays).
        """
        self.residuals = {}
        for key, r in state["residuals"].items():
            self.residuals[key] = r.detach().clone() if is_tensor(r) else np.array(r, np.float32)

    def __repr__(self) -> str:
        return f"ErrorFeedback({self.compressor!r})"
