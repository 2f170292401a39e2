"""The codecs: :class:`TopK`, :class:`Int8` and :class:`FP16`, behind one API.

``compress(t) -> Payload``, ``decompress(p)`` (same shape, dtype and kind as
``t``), ``accumulate(p, out)`` (``out += decompress(p)``, fused, no full-size
temporary), ``layout(shape, dtype)`` (an empty payload of the right size) and
``payload_nbytes(numel)``. The arithmetic runs in a twin (:mod:`.cpu` or
:mod:`.cuda`) chosen by ``backend`` and where the data lives.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from numbers import Real
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from . import plan
from .dispatch import check_backend, twin
from .indices import index_dtype, is_narrow, narrow, wide_like, widen
from .payload import Field, Payload, allocate, layout_nbytes
from .tensors import check_float_out, empty, flatten, host, is_tensor, on_cuda, restore, zeros

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .tensors import DType

BAD_RATIO = "ratio must be a number in (0, 1], got {ratio!r}"
BAD_CHUNK = "chunk must be a positive integer, got {chunk!r}"
WRONG_CODEC = "{name} cannot decode a {codec!r} payload"


class Codec:
    """Base of the codecs; ``backend`` is ``"auto"``, ``"cpu"`` or ``"cuda"``.

    Each is a :class:`~.protocol.Compressor`, stateless: wrap one in
    :class:`~.feedback.ErrorFeedback` to carry its error into the next step.
    """

    codec: ClassVar[str]
    #: Whether decoding only writes some elements (so the output starts zeroed).
    sparse: ClassVar[bool] = False

    def __init__(self, backend: str = "auto") -> None:
        self.backend = check_backend(backend)

    def fields(self, numel: int) -> list[Field]:
        """The arrays of a payload for ``numel`` elements, in buffer order."""
        raise NotImplementedError

    def params(self) -> dict[str, int]:
        """What decoding needs besides the arrays."""
        return {}

    def payload_nbytes(self, numel: int) -> int:
        """Bytes of the payload of any tensor of ``numel`` elements."""
        return layout_nbytes(self.fields(numel))

    def layout(
        self, shape: tuple[int, ...], dtype: DType, device: torch.device | None = None
    ) -> Payload:
        """An empty (uninitialised) payload for a tensor of ``shape`` and ``dtype``.

        Its buffer is numpy, or a torch uint8 tensor on ``device`` when given.
        """
        shape = tuple(int(s) for s in shape)
        fields = self.fields(math.prod(shape))
        buffer = allocate(layout_nbytes(fields), device)
        return Payload(self.codec, shape, dtype, fields, buffer, self.params())

    empty = layout

    def compress(self, t: Any, key: Hashable | None = None) -> Payload:
        """Compress ``t`` (numpy array or torch tensor of floats, any shape).

        ``key`` is there for the call shape every :class:`~.protocol.Compressor` shares
        and is ignored: a plain codec keeps nothing between calls.
        """
        flat = flatten(t)
        p = self.layout(flat.shape, flat.dtype, flat.device)
        self.encode(self.twin(flat.device is not None), flat.data, arrays(p))
        return p

    def decompress(self, p: Payload) -> Any:
        """The tensor ``p`` encodes: same shape, dtype and kind as the compressed one."""
        self.check(p)
        device = p.buffer.device if p.on_cuda else None
        out = (zeros if self.sparse else empty)(p.numel, device)
        self.expand(self.twin(p.on_cuda), p, out, add=False)
        return restore(out, p.shape, p.dtype)

    def accumulate(self, p: Payload, out: Any) -> None:
        """``out += decompress(p)`` in place; ``out`` is flat float32 with ``p``'s numel."""
        self.check(p)
        flat = check_float_out(out, p.numel)
        self.expand(self.twin(p.on_cuda or on_cuda(out)), p, flat, add=True)

    def check(self, p: object) -> None:
        """Raise unless ``p`` is a payload of this codec."""
        if not isinstance(p, Payload) or p.codec != self.codec:
            codec = p.codec if isinstance(p, Payload) else type(p).__name__
            raise ValueError(WRONG_CODEC.format(name=type(self).__name__, codec=codec))

    def twin(self, data_on_cuda: bool) -> ModuleType:
        """The twin module that runs this compressor's kernels for such data."""
        return twin(self.backend, data_on_cuda)

    # ---- per codec: the twin calls ----

    def encode(self, twin: ModuleType, x: Any, a: dict[str, Any]) -> None:
        """Fill the payload arrays ``a`` from the flat float32 ``x``."""
        raise NotImplementedError

    def feedback(self, twin: ModuleType, r: Any, t: Any, a: dict[str, Any]) -> None:
        """Encode acc = r + t into ``a`` and leave r = acc - decode(a)."""
        raise NotImplementedError

    def expand(self, twin: ModuleType, p: Payload, out: Any, add: bool) -> None:
        """out = decode(p), or out += decode(p) when ``add``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args}{', ' if args else ''}backend={self.backend!r})"


def arrays(p: Payload) -> dict[str, Any]:
    """The payload's arrays as the twins take them (torch CPU views as numpy)."""
    return {name: host(a) for name, a in p.arrays.items()}


def _int16(a: Any) -> Any:
    if is_tensor(a):
        import torch

        return a.view(torch.int16)
    return a.view(np.int16)


class TopK(Codec):
    """Keep the k = max(1, round(ratio * numel)) entries of largest magnitude."""

    codec = "topk"
    sparse = True

    def __init__(self, ratio: float = 0.01, backend: str = "auto") -> None:
        ok = isinstance(ratio, Real) and not isinstance(ratio, bool) and 0 < ratio <= 1
        if not ok:
            raise ValueError(BAD_RATIO.format(ratio=ratio))
        super().__init__(backend)
        self.ratio = float(ratio)

    def k(self, numel: int) -> int:
        """Entries kept of a tensor of ``numel`` elements."""
        return plan.topk_count(self.ratio, numel)

    def fields(self, numel: int) -> list[Field]:
        """``indices`` (uint16, int32 or int64 by :func:`.indices.index_dtype`) and
        float32 ``values``, k each; uint16 indices go after the values, so that
        every array stays aligned to its itemsize."""
        k = self.k(numel)
        index = Field("indices", index_dtype(numel), k)
        values = Field("values", np.dtype(np.float32), k)
        return [values, index] if index.dtype.itemsize == 2 else [index, values]

    def encode(self, twin, x, a) -> None:
        idx = a["indices"]
        out = wide_like(idx) if is_narrow(idx) else idx  # the kernels select int32 indices
        twin.topk(x, a["values"].shape[0], out, a["values"])
        if out is not idx:
            narrow(out, idx)

    def feedback(self, twin, r, t, a) -> None:
        idx = a["indices"]
        out = wide_like(idx) if is_narrow(idx) else idx
        twin.topk_feedback(r, t, a["values"].shape[0], out, a["values"])
        if out is not idx:
            narrow(out, idx)

    def expand(self, twin, p, out, add) -> None:
        a = arrays(p)
        twin.scatter_add(out, widen(a["indices"]), a["values"])  # out zeroed when not add

    def __repr__(self) -> str:
        return f"TopK(ratio={self.ratio!r}, backend={self.backend!r})"


class Int8(Codec):
    """int8 with a float32 scale per ``chunk`` elements: scale = max|x| / 127.

    Error per element at most scale / 2. An all-zero chunk has scale 0 (q = 0);
    a non-zero one at least 2**-126, so that subnormal values keep the bound.
    """

    codec = "int8"

    def __init__(self, chunk: int = 4096, backend: str = "auto") -> None:
        ok = isinstance(chunk, (int, np.integer)) and not isinstance(chunk, bool) and chunk > 0
        if not ok:
            raise ValueError(BAD_CHUNK.format(chunk=chunk))
        super().__init__(backend)
        self.chunk = int(chunk)

    def params(self) -> dict[str, int]:
        return {"chunk": self.chunk}

    def fields(self, numel: int) -> list[Field]:
        scales = -(-numel // self.chunk)
        return [Field("scale", np.dtype(np.float32), scales), Field("q", np.dtype(np.int8), numel)]

    def encode(self, twin, x, a) -> None:
        twin.int8(x, self.chunk, a["q"], a["scale"])

    def feedback(self, twin, r, t, a) -> None:
        twin.int8_feedback(r, t, self.chunk, a["q"], a["scale"])

    def expand(self, twin, p, out, add) -> None:
        a = arrays(p)
        twin.int8_expand(a["q"], a["scale"], p.params["chunk"], out, add)


class FP16(Codec):
    """Values cast to float16 (round to nearest even)."""

    codec = "fp16"

    def fields(self, numel: int) -> list[Field]:
        return [Field("values", np.dtype(np.float16), numel)]

    def encode(self, twin, x, a) -> None:
        twin.fp16(x, _int16(a["values"]))

    def feedback(self, twin, r, t, a) -> None:
        twin.fp16_feedback(r, t, _int16(a["values"]))

    def expand(self, twin, p, out, add) -> None:
        twin.fp16_expand(_int16(arrays(p)["values"]), out, add)
