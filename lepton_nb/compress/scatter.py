"""``scatter_add(dst, indices, values)``: dst[indices] += values, duplicates accumulating.

Indices are positions in the flattened (C order) ``dst``. Unlike numpy's
``dst[indices] += values``, repeated indices all count, as with ``np.add.at``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .dispatch import check_backend, twin
from .indices import widen
from .tensors import NOT_AN_ARRAY, NOT_FLOAT, NOT_INTEGER, host, is_tensor, on_cuda, torch_module

BAD_DST = "dst must be a float32 or float64 array, got {what}"
NOT_CONTIGUOUS = "dst must be contiguous (it is updated in place)"
LENGTHS = "indices and values must have the same number of elements, got {n} and {m}"
OUT_OF_RANGE = "indices must lie in [0, {n}) (dst's element count), got {lo}..{hi}"


def _check_array(a: Any, name: str) -> None:
    if not (isinstance(a, np.ndarray) or is_tensor(a)):
        raise TypeError(NOT_AN_ARRAY.format(name=name, type=type(a).__name__))


def _dtype(a: Any) -> str:
    return str(a.dtype).replace("torch.", "")


def _flat(a: Any, dtype_name: str, like: Any) -> Any:
    """``a`` flat, contiguous, of dtype ``dtype_name``, where ``like`` lives."""
    if is_tensor(a) or on_cuda(like):
        torch = torch_module()
        a = a if is_tensor(a) else torch.from_numpy(np.ascontiguousarray(a))
        device = like.device if on_cuda(like) else "cpu"
        a = a.detach().to(device, getattr(torch, dtype_name)).contiguous().reshape(-1)
        return a if on_cuda(like) else a.numpy()
    return np.ascontiguousarray(a, dtype=dtype_name).reshape(-1)


def scatter_add(dst: Any, indices: Any, values: Any, backend: str = "auto") -> None:
    """``dst[indices] += values`` in place, every duplicate index accumulating.

    Indices are positions in the flattened (C order) ``dst``; unlike numpy's
    ``dst[indices] += values``, repeated indices all count, as with ``np.add.at``.

    Parameters
    ----------
    dst : numpy.ndarray or torch.Tensor
        The array updated in place: contiguous float32 or float64, any shape, on the host or
        (torch) in CUDA memory.
    indices : numpy.ndarray or torch.Tensor
        Integers in ``[0, dst.size)``, any shape (taken flat); moved to where ``dst`` is.
    values : numpy.ndarray or torch.Tensor
        Floats, one per index (taken flat), converted to ``dst``'s dtype and moved to where
        ``dst`` is.
    backend : str, optional
        ``"auto"`` (the default: the CUDA twin for a CUDA ``dst``, else the CPU twin),
        ``"cpu"`` or ``"cuda"``, as for the compressors.

    Raises
    ------
    TypeError
        If an argument is not a numpy array or torch tensor, ``dst`` is not float32 or
        float64, ``indices`` does not hold integers or ``values`` does not hold floats.
    ValueError
        If ``backend`` is unknown (or ``"cpu"`` with a CUDA ``dst``), ``dst`` is not
        contiguous, or ``indices`` and ``values`` differ in element count.
    IndexError
        If an index lies outside ``[0, dst.size)``.
    RuntimeError
        If the CUDA twin is needed but numba.cuda finds no GPU (and no simulator).
    """
    check_backend(backend)
    for a, name in ((dst, "dst"), (indices, "indices"), (values, "values")):
        _check_array(a, name)
    dtype_name = _dtype(dst)
    contiguous = dst.is_contiguous() if is_tensor(dst) else dst.flags.c_contiguous
    if dtype_name not in ("float32", "float64"):
        raise TypeError(BAD_DST.format(what=dtype_name))
    if not contiguous:
        raise ValueError(NOT_CONTIGUOUS)
    if not _dtype(indices).startswith(("int", "uint")):
        raise TypeError(NOT_INTEGER.format(name="indices", dtype=indices.dtype))
    if not _dtype(values).startswith(("float", "bfloat")):
        raise TypeError(NOT_FLOAT.format(name="values", dtype=values.dtype))
    n = dst.numel() if is_tensor(dst) else dst.size
    count = indices.numel() if is_tensor(indices) else indices.size
    if count != (values.numel() if is_tensor(values) else values.size):
        m = values.numel() if is_tensor(values) else values.size
        raise ValueError(LENGTHS.format(n=count, m=m))
    if count == 0:
        return
    indices = widen(indices)  # uint16 (e.g. a top-k payload's) as int32: torch has no uint16 min
    lo, hi = int(indices.min()), int(indices.max())
    if lo < 0 or hi >= n:
        raise IndexError(OUT_OF_RANGE.format(n=n, lo=lo, hi=hi))
    idx = _flat(indices, "int32" if _dtype(indices) == "int32" else "int64", dst)
    vals = _flat(values, dtype_name, dst)
    flat = dst.reshape(-1) if is_tensor(dst) and dst.is_cuda else host(dst).reshape(-1)
    twin(backend, on_cuda(dst)).scatter_add(flat, idx, vals)
