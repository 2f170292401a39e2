"""What a pushed value is: a large array (shared or compressed) or a plain object.

Arrays are numpy arrays and CPU torch tensors. Their content key is the
xxh3-128 hash of their bytes, dtype and shape: equal keys mean equal values.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import xxhash


@dataclass(frozen=True)
class ArrayMeta:
    """How to rebuild an array on a rank: numpy or torch, dtype and shape."""

    kind: str  # "numpy" | "torch"
    dtype: str
    shape: tuple[int, ...]
    nbytes: int


def as_array(value: Any) -> tuple[np.ndarray, str] | None:
    """A C-contiguous numpy view of ``value`` and its kind, or None if it is not an array.

    CUDA tensors and object arrays are not arrays here (they travel as objects).
    """
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            return None
        return np.ascontiguousarray(value), "numpy"
    torch = _torch()
    if torch is not None and isinstance(value, torch.Tensor):
        if value.device.type != "cpu" or value.requires_grad or value.is_sparse:
            return None
        if value.dtype == torch.bfloat16:  # numpy has no bfloat16: ship the bits
            return np.ascontiguousarray(
                value.contiguous().view(torch.int16).numpy()
            ), "torch:bfloat16"
        return np.ascontiguousarray(value.contiguous().numpy()), "torch"
    return None


def _torch() -> Any:
    import sys

    return sys.modules.get("torch")  # only if the user already has torch loaded


def meta_of(arr: np.ndarray, kind: str) -> ArrayMeta:
    """The ArrayMeta of a contiguous array."""
    return ArrayMeta(kind, arr.dtype.str, tuple(arr.shape), int(arr.nbytes))


#: Arrays at least this large are hashed in two halves at once (xxhash drops the GIL).
PARALLEL_HASH_BYTES = 64 << 20


def byte_view(arr: np.ndarray) -> memoryview:
    """The bytes of a contiguous array, flat (empty for an empty array).

    Parameters
    ----------
    arr
        A C-contiguous array.

    Returns
    -------
    memoryview
        Its bytes, format ``"B"``, without a copy.
    """
    return arr.reshape(-1).data.cast("B") if arr.nbytes else memoryview(b"")


def hashed_ranges(nbytes: int) -> list[tuple[int, int]]:
    """The (start, stop) byte ranges that are hashed apart: two halves of a large array, else one.

    Parameters
    ----------
    nbytes
        Size of the array in bytes.

    Returns
    -------
    list of tuple of int
        One range, or two halves from :data:`PARALLEL_HASH_BYTES` bytes on.
    """
    if nbytes >= PARALLEL_HASH_BYTES:
        half = nbytes // 2
        return [(0, half), (half, nbytes)]
    return [(0, nbytes)]


def key_from(arr: np.ndarray, kind: str, digests: list[bytes]) -> str:
    """The content key of ``arr`` from the xxh3-128 digests of its :func:`hashed_ranges`.

    Parameters
    ----------
    arr
        The contiguous array (its dtype and shape enter the key).
    kind
        What it was pushed as: ``"numpy"``, ``"torch"`` or ``"torch:bfloat16"``.
    digests
        ``xxh3_128`` digests of its byte ranges, in the order of :func:`hashed_ranges`.

    Returns
    -------
    str
        The key, as :func:`content_key` gives it.
    """
    body = f"{len(digests)}|".encode() + b"".join(digests)
    return xxhash.xxh3_128_hexdigest(f"{kind}|{arr.dtype.str}|{arr.shape}|".encode() + body)


def content_key(arr: np.ndarray, kind: str) -> str:
    """xxh3-128 over the kind, dtype, shape and the xxh3-128 of the bytes of a contiguous array."""
    data = byte_view(arr)
    ranges = hashed_ranges(len(data))
    digests: list[bytes] = [b""] * len(ranges)

    def digest(i: int) -> None:
        start, stop = ranges[i]
        digests[i] = xxhash.xxh3_128_digest(data[start:stop])

    if len(ranges) == 2:
        helper = threading.Thread(target=digest, args=(0,))
        helper.start()
        digest(1)
        helper.join()
    else:
        digest(0)
    return key_from(arr, kind, digests)


def rebuild(arr: np.ndarray, meta: ArrayMeta) -> Any:
    """Turn a flat or shaped numpy buffer back into what was pushed (numpy or torch)."""
    arr = arr.view(np.dtype(meta.dtype)).reshape(meta.shape)
    if meta.kind == "numpy":
        return arr
    import torch

    t = torch.from_numpy(arr)
    return t.view(torch.bfloat16) if meta.kind == "torch:bfloat16" else t
