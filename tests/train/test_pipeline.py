"""Splitting a Sequential into stages balanced by parameter count."""

from __future__ import annotations

import pytest

from lepton_nb.train.pipeline import balance


def test_balance_minimises_the_largest_stage():
    assert balance([10, 10, 10, 10], 2) == [(0, 2), (2, 4)]
    assert balance([100, 1, 1, 1, 97], 2) == [(0, 1), (1, 5)]
    assert balance([0, 50, 0, 50, 0], 2) in ([(0, 2), (2, 5)], [(0, 3), (3, 5)])
    stages = balance([5, 1, 1, 1, 1, 1, 5], 3)
    assert [hi - lo for lo, hi in stages] and stages[0][0] == 0 and stages[-1][1] == 7
    assert max(sum([5, 1, 1, 1, 1, 1, 5][lo:hi]) for lo, hi in stages) == 5


def test_every_stage_gets_a_layer():
    assert balance([1000, 0, 0], 3) == [(0, 1), (1, 2), (2, 3)]
    with pytest.raises(ValueError, match="cannot split 2 layers into 3 stages"):
        balance([1, 1], 3)
