"""Trainer datasets: accepted forms, clear errors, seeded order and equal shards."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from lepton_nb.train.data import as_arrays, order, shard, steps


def test_tuples_of_arrays_and_tensors_and_datasets_become_arrays():
    X = np.random.default_rng(0).random((10, 3))
    y = np.arange(10)
    Xa, ya = as_arrays((X, y))
    assert Xa.dtype == np.float32 and ya.dtype == y.dtype and Xa.shape == (10, 3)
    Xt, yt = as_arrays((torch.from_numpy(X).float(), torch.from_numpy(y)))
    np.testing.assert_array_equal(Xt, Xa)
    Xd, yd = as_arrays(TensorDataset(torch.from_numpy(X).float(), torch.from_numpy(y)))
    np.testing.assert_array_equal(Xd, Xa)
    np.testing.assert_array_equal(yd, y)


@pytest.mark.parametrize(
    "bad, error, message",
    [
        ([1, 2, 3], TypeError, "train_dataset must be a torch.utils.data.Dataset .* got list"),
        ((np.zeros(3),), TypeError, "got a tuple of 1 items"),
        (([1, 2], [1, 2]), TypeError, r"got \(list, list\)"),
        ((np.zeros((4, 2)), np.zeros(3)), ValueError, "X has 4 rows but y has 3"),
        ((np.zeros((0, 2)), np.zeros(0)), ValueError, "train_dataset is empty"),
        ((np.float32(1.0), np.zeros(1)), TypeError, "got"),
    ],
)
def test_bad_datasets_say_what_was_expected(bad, error, message):
    with pytest.raises(error, match=message):
        as_arrays(bad)


def test_items_must_be_pairs():
    class Singles(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return torch.zeros(3)

    with pytest.raises(TypeError, match=r"val_dataset\[0\] must be an \(x, y\) pair"):
        as_arrays(Singles(), "val_dataset")


def test_order_is_seeded_per_epoch_and_shards_are_disjoint_and_equal():
    assert np.array_equal(order(100, 3, 7), order(100, 3, 7))
    assert not np.array_equal(order(100, 3, 7), order(100, 4, 7))
    parts = [shard(101, r, 3, epoch=2, seed=0) for r in range(3)]
    assert all(len(p) == 33 for p in parts)
    together = np.concatenate(parts)
    assert len(set(together.tolist())) == 99
    assert steps(33, 10) == 4 and steps(30, 10) == 3
