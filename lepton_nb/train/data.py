"""Datasets for the Trainer: checked, turned into arrays, shuffled and sharded by epoch.

A dataset is a ``torch.utils.data.Dataset`` whose items are ``(x, y)``, or a
tuple ``(X, y)`` of tensors or numpy arrays. It reaches the ranks as two arrays
pushed through the data-movement layer (shared memory on one host, cached by
content), never inside the pickles of each call.
"""

from __future__ import annotations

from typing import Any

import numpy as np

BAD_DATASET = (
    "{name} must be a torch.utils.data.Dataset of (x, y) items or a tuple (X, y) of tensors "
    "or numpy arrays, got {got}"
)
BAD_LENGTHS = "{name}: X has {nx} rows but y has {ny}; they must match"
EMPTY = "{name} is empty: it needs at least one (x, y) example"


def _array(value: Any) -> np.ndarray | None:
    if isinstance(value, np.ndarray):
        return value
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return None
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return None


def _numpy(value: Any) -> np.ndarray:
    found = _array(value)
    return found if found is not None else np.asarray(value)


def as_arrays(dataset: Any, name: str = "train_dataset") -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` as numpy arrays (no copy for CPU tensors and arrays); TypeError/ValueError."""
    if isinstance(dataset, tuple):
        if len(dataset) != 2:
            got = f"a tuple of {len(dataset)} items"
            raise TypeError(BAD_DATASET.format(name=name, got=got))
        X, y = _array(dataset[0]), _array(dataset[1])
        if X is None or y is None:
            got = f"({type(dataset[0]).__name__}, {type(dataset[1]).__name__})"
            raise TypeError(BAD_DATASET.format(name=name, got=got))
    else:
        X, y = _from_dataset(dataset, name)
    if X.ndim == 0 or y.ndim == 0:
        raise ValueError(f"{name}: X and y need a first dimension of examples")
    if len(X) != len(y):
        raise ValueError(BAD_LENGTHS.format(name=name, nx=len(X), ny=len(y)))
    if len(X) == 0:
        raise ValueError(EMPTY.format(name=name))
    if X.dtype == np.float64:
        X = X.astype(np.float32)
    return np.ascontiguousarray(X), np.ascontiguousarray(y)


def _from_dataset(dataset: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    from torch.utils.data import Dataset

    if not isinstance(dataset, Dataset) or not hasattr(dataset, "__len__"):
        raise TypeError(BAD_DATASET.format(name=name, got=type(dataset).__name__))
    xs, ys = [], []
    for i in range(len(dataset)):
        item = dataset[i]
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise TypeError(f"{name}[{i}] must be an (x, y) pair, got {type(item).__name__}")
        xs.append(_numpy(item[0]))
        ys.append(_numpy(item[1]))
    if not xs:
        raise ValueError(EMPTY.format(name=name))
    return np.stack(xs), np.stack(ys)


def order(n: int, epoch: int, seed: int) -> np.ndarray:
    """The example order of ``epoch``: a permutation seeded by ``seed`` and the epoch."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def shard(n: int, rank: int, world: int, epoch: int, seed: int) -> np.ndarray:
    """Rank ``rank``'s examples for ``epoch``: every rank gets ``n // world`` of them."""
    return order(n, epoch, seed)[rank::world][: n // world]


def steps(count: int, batch_size: int) -> int:
    """Batches in ``count`` examples (the last one may be smaller)."""
    return -(-count // batch_size)
