"""Gradient compression and sparse updates, each kernel with a numba CPU and a CUDA twin.

Usage::

    from lepton_nb.compress import TopK, Int8, FP16, ErrorFeedback, scatter_add
    c = TopK(ratio=0.01)
    p = c.compress(t)                # t: numpy array or torch tensor, any shape
    c.decompress(p)                  # same shape, dtype and kind
    p.nbytes                         # bytes on the wire
    ef = ErrorFeedback(TopK(0.01))
    ef.compress(t, "layer1.weight")  # sends C(t + residual); keeps what it dropped

Every compressor is a :class:`Compressor` (``compress(t, key)``, ``decompress``,
``accumulate``, ``payload_nbytes``); the error-feedback ones are also
:class:`FeedbackCompressor` (residuals per key, ``state_dict``).

``backend="auto"`` runs CUDA tensors on the CUDA twin (:mod:`.cuda`) and host
data on the CPU twin (:mod:`.cpu`). Importing this package loads neither numba
nor numba.cuda; each twin loads, and its kernels compile, on first use.
"""

from __future__ import annotations

from .compressors import FP16, Codec, Int8, TopK
from .feedback import ErrorFeedback
from .momentum import MomentumCorrection
from .payload import Field, Payload
from .protocol import Compressor, FeedbackCompressor
from .scatter import scatter_add

__all__ = [
    "FP16",
    "Compressor",
    "Codec",
    "ErrorFeedback",
    "FeedbackCompressor",
    "Field",
    "Int8",
    "MomentumCorrection",
    "Payload",
    "TopK",
    "scatter_add",
]
