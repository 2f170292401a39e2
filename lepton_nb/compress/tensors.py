"""Tensors in and out of the kernels: flat float32 views, and back to the user's kind.

The kernels see 1-D contiguous float32 arrays: numpy for host data, torch
tensors for CUDA data. :func:`flatten` makes one from the user's numpy array or
torch tensor (converting float16/bfloat16/float64 to float32, copying only when
it must) and remembers what to give back; :func:`restore` gives it back.
torch is never imported here: a torch tensor can only exist once it is.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from typing import TypeAlias

    import torch

    #: A tensor's element type as the user gave it.
    DType: TypeAlias = "np.dtype | torch.dtype"

NOT_AN_ARRAY = "{name} must be a numpy array or a torch tensor, got {type}"
NOT_FLOAT = "{name} must hold floating-point values (float32, float16, bfloat16), got {dtype}"
NOT_INTEGER = "{name} must hold integers (int32 or int64), got {dtype}"


def torch_module() -> Any:
    """The torch module if it has been imported, else None."""
    return sys.modules.get("torch")


def is_tensor(a: object) -> TypeGuard[torch.Tensor]:
    """Whether ``a`` is a torch tensor."""
    torch = torch_module()
    return torch is not None and isinstance(a, torch.Tensor)


def on_cuda(a: object) -> bool:
    """Whether ``a`` is a torch tensor in CUDA memory."""
    return is_tensor(a) and a.is_cuda


def host(a: Any) -> Any:
    """A host array as numpy (torch CPU tensors share their memory); CUDA tensors as is."""
    if is_tensor(a) and not a.is_cuda:
        return a.detach().numpy()
    return a


@dataclass
class Flat:
    """A tensor as the kernels see it, and what :func:`restore` needs to give it back."""

    data: Any  #: 1-D contiguous float32 (numpy, or a torch CUDA tensor)
    shape: tuple[int, ...]
    dtype: DType  #: the user's dtype: np.dtype or torch.dtype
    device: torch.device | None = None  #: the torch device of CUDA input, else None

    @property
    def numel(self) -> int:
        """Element count."""
        return math.prod(self.shape)


def flatten(t: Any, name: str = "t") -> Flat:
    """A flat float32 view of ``t`` (a copy if it is not float32 or not contiguous)."""
    if isinstance(t, np.ndarray):
        if t.dtype.kind != "f":
            raise TypeError(NOT_FLOAT.format(name=name, dtype=t.dtype))
        data = np.ascontiguousarray(t, dtype=np.float32).reshape(-1)
        return Flat(data, tuple(t.shape), t.dtype)
    if is_tensor(t):
        if not t.is_floating_point():
            raise TypeError(NOT_FLOAT.format(name=name, dtype=t.dtype))
        torch = torch_module()
        flat = t.detach().to(torch.float32).contiguous().reshape(-1)
        if t.is_cuda:
            return Flat(flat, tuple(t.shape), t.dtype, t.device)
        return Flat(flat.numpy(), tuple(t.shape), t.dtype)
    raise TypeError(NOT_AN_ARRAY.format(name=name, type=type(t).__name__))


def zeros(numel: int, device: torch.device | None = None) -> Any:
    """A zeroed flat float32 array: numpy on the host, a torch tensor on ``device``."""
    if device is None:
        return np.zeros(numel, np.float32)
    return torch_module().zeros(numel, dtype=torch_module().float32, device=device)


def empty(numel: int, device: torch.device | None = None) -> Any:
    """An uninitialised flat float32 array: numpy on the host, a torch tensor on ``device``."""
    if device is None:
        return np.empty(numel, np.float32)
    return torch_module().empty(numel, dtype=torch_module().float32, device=device)


def restore(flat: Any, shape: tuple[int, ...], dtype: DType) -> Any:
    """``flat`` (float32) as the user's kind, shape and dtype."""
    torch = torch_module()
    if torch is not None and isinstance(dtype, torch.dtype):
        out = flat if is_tensor(flat) else torch.from_numpy(flat)
        return out.reshape(shape).to(dtype)
    return flat.reshape(shape).astype(dtype, copy=False)


def check_float_out(out: Any, numel: int, name: str = "out") -> Any:
    """``out`` as a flat float32 array to accumulate into (must be contiguous, ``numel`` long)."""
    if not (isinstance(out, np.ndarray) or is_tensor(out)):
        raise TypeError(NOT_AN_ARRAY.format(name=name, type=type(out).__name__))
    if str(out.dtype) not in ("float32", "torch.float32"):
        raise TypeError(f"{name} must be float32, got {out.dtype}")
    if isinstance(out, np.ndarray):
        contiguous, size = out.flags.c_contiguous, out.size
    else:
        contiguous, size = out.is_contiguous(), out.numel()
    if not contiguous or size != numel:
        raise ValueError(f"{name} must be a contiguous float32 array of {numel} elements")
    return host(out.reshape(-1))
