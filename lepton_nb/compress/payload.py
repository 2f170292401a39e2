"""What a compressor puts on the wire: one contiguous uint8 buffer and typed views into it.

A :class:`Payload` holds all of a compressed tensor's arrays back to back in
``buffer`` (numpy for host data, a torch uint8 CUDA tensor for CUDA data), so a
collective sends it as one message. Its layout (the :class:`Field` list) depends
only on the codec's parameters and the tensor's element count, so every rank's
payload for the same shape has the same size, and :meth:`Payload.like` rebuilds
the views around a received buffer.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .tensors import DType

BAD_BUFFER = "a payload buffer must be a 1-D uint8 array of {nbytes} bytes, got {got}"


@dataclass(frozen=True)
class Field:
    """One array of a payload: its name, numpy dtype and element count.

    Parameters
    ----------
    name : str
        The array's name, its key in :attr:`Payload.arrays` (e.g. ``"indices"``, ``"values"``).
    dtype : numpy.dtype
        The array's element type.
    count : int
        The array's element count.
    """

    name: str
    dtype: np.dtype
    count: int

    @property
    def nbytes(self) -> int:
        """Bytes this array takes in the buffer."""
        return np.dtype(self.dtype).itemsize * self.count


def layout_nbytes(fields: list[Field]) -> int:
    """Total bytes of a payload with these fields."""
    return sum(f.nbytes for f in fields)


def allocate(nbytes: int, device: torch.device | None = None) -> Any:
    """An uninitialised uint8 buffer: numpy on the host, a torch tensor on ``device``."""
    if device is None:
        return np.empty(nbytes, np.uint8)
    import torch

    return torch.empty(nbytes, dtype=torch.uint8, device=device)


def _is_torch(buffer: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(buffer, torch.Tensor)


def _views(buffer: Any, fields: list[Field]) -> dict[str, Any]:
    views, offset = {}, 0
    if _is_torch(buffer):
        import torch

        for f in fields:
            dtype = getattr(torch, np.dtype(f.dtype).name)
            views[f.name] = buffer[offset : offset + f.nbytes].view(dtype)
            offset += f.nbytes
    else:
        for f in fields:
            views[f.name] = buffer[offset : offset + f.nbytes].view(f.dtype)
            offset += f.nbytes
    return views


@dataclass(eq=False)
class Payload:
    """A compressed tensor: ``codec``, the original ``shape`` and ``dtype``, and its bytes.

    Decompressing gives back the same kind, shape and dtype. The attribute
    ``arrays`` (not a constructor argument) maps each field name (topk:
    ``indices``, uint16 up to 65536 elements, and ``values``; int8: ``scale``,
    ``q``; fp16: ``values``) to a typed view into ``buffer``, made on construction.

    Parameters
    ----------
    codec : str
        The name of the codec that made it: ``"topk"``, ``"int8"`` or ``"fp16"``.
    shape : tuple of int
        The original tensor's shape.
    dtype : numpy.dtype or torch.dtype
        The original tensor's dtype: a ``torch.dtype`` for torch input, a ``np.dtype`` for
        numpy input.
    fields : list of Field
        The arrays in ``buffer``, in order, back to back.
    buffer : numpy.ndarray or torch.Tensor
        1-D uint8 holding all the arrays, exactly as many bytes as ``fields`` take: numpy for
        host data, a torch uint8 tensor (e.g. in CUDA memory) otherwise.
    params : dict of str to int, optional
        What decoding needs beyond the arrays (int8: ``chunk``); default empty.

    Raises
    ------
    ValueError
        If ``buffer`` is not a 1-D uint8 numpy array or torch tensor of the fields' size.
    """

    codec: str
    shape: tuple[int, ...]
    dtype: DType
    fields: list[Field]
    buffer: Any
    params: dict[str, int] = field(default_factory=dict)
    arrays: dict[str, Any] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        expected = layout_nbytes(self.fields)
        ok = getattr(self.buffer, "ndim", None) == 1 and _nbytes(self.buffer) == expected
        dtype = getattr(self.buffer, "dtype", None)
        ok = ok and (str(dtype) in ("uint8", "torch.uint8"))
        if not ok:
            got = f"{type(self.buffer).__name__} {getattr(self.buffer, 'shape', '')} {dtype}"
            raise ValueError(BAD_BUFFER.format(nbytes=expected, got=got))
        self.shape = tuple(int(s) for s in self.shape)
        self.arrays = _views(self.buffer, self.fields)

    @property
    def nbytes(self) -> int:
        """Bytes that go on the wire (the buffer's size)."""
        return _nbytes(self.buffer)

    @property
    def numel(self) -> int:
        """Element count of the original tensor."""
        return math.prod(self.shape)

    @property
    def on_cuda(self) -> bool:
        """Whether the buffer is in CUDA memory (a torch CUDA tensor)."""
        return _is_torch(self.buffer) and self.buffer.is_cuda

    def tensor(self) -> torch.Tensor:
        """The buffer as a torch uint8 tensor sharing its memory, e.g. for torch.distributed.

        Returns
        -------
        torch.Tensor
            The buffer itself if it is a torch tensor, else a tensor on the numpy buffer.
        """
        if _is_torch(self.buffer):
            return self.buffer
        import torch

        return torch.from_numpy(self.buffer)

    def like(self, buffer: Any) -> Payload:
        """A payload with this one's layout around ``buffer`` (e.g. one received from a peer).

        Parameters
        ----------
        buffer : numpy.ndarray or torch.Tensor
            1-D uint8 of :attr:`nbytes` bytes, used as is (not copied).

        Returns
        -------
        Payload
            Same codec, shape, dtype, fields and params (a copy of them), with views into
            ``buffer``.

        Raises
        ------
        ValueError
            If ``buffer`` is not a 1-D uint8 numpy array or torch tensor of this size.
        """
        return Payload(self.codec, self.shape, self.dtype, self.fields, buffer, dict(self.params))


def _nbytes(buffer: Any) -> int:
    if _is_torch(buffer):
        return buffer.numel() * buffer.element_size()
    return int(buffer.nbytes)
