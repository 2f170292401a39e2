"""Top-k index dtypes: uint16 up to 65536 elements, int32 below 2**31, int64 above.

The kernels select with int32 (or int64) indices; for tensors of at most 65536
elements :class:`~.compressors.TopK` narrows them to uint16 in the payload
after selection (:func:`narrow`) and widens them back before a scatter
(:func:`widen`), O(k) each. torch's uint16 support is limited (no min/max, no
indexing, no ``__cuda_array_interface__``), so torch tensors go through an
int16 view: truncating on the way in, masking with 0xFFFF on the way out.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .tensors import is_tensor, torch_module

#: The most elements a tensor may have for uint16 indices (the last index is 65535).
UINT16_NUMEL = 1 << 16


def index_dtype(numel: int) -> np.dtype:
    """The payload's index dtype for a tensor of ``numel`` elements."""
    if numel <= UINT16_NUMEL:
        return np.dtype(np.uint16)
    return np.dtype(np.int32 if numel < 2**31 else np.int64)


def is_narrow(idx: Any) -> bool:
    """Whether ``idx`` (numpy array or torch tensor) holds uint16 indices."""
    return str(idx.dtype).replace("torch.", "") == "uint16"


def wide_like(idx: Any) -> Any:
    """An uninitialised int32 array as long as ``idx``, of its kind and device."""
    if is_tensor(idx):
        torch = torch_module()
        return torch.empty(idx.numel(), dtype=torch.int32, device=idx.device)
    return np.empty(idx.size, np.int32)


def narrow(wide: Any, idx: Any) -> None:
    """idx[:] = wide: int32 indices below 65536 into the uint16 ``idx``."""
    if is_tensor(idx):
        torch = torch_module()
        idx.view(torch.int16).copy_(wide)  # int32 -> int16 keeps the low 16 bits
    else:
        idx[...] = wide


def widen(idx: Any) -> Any:
    """``idx`` as int32 when it is uint16 (a new array), else ``idx`` itself."""
    if not is_narrow(idx):
        return idx
    if is_tensor(idx):
        torch = torch_module()
        return idx.view(torch.int16).to(torch.int32) & 0xFFFF
    return idx.astype(np.int32)
