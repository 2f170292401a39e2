import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lepton_nb.compress import plan


@given(st.floats(1e-6, 1.0), st.integers(0, 10**9))
def test_topk_count_is_round_ratio_times_numel_at_least_one(ratio, numel):
    k = plan.topk_count(ratio, numel)
    assert k == min(numel, max(1, round(ratio * numel)))


def test_small_tensors_are_their_own_sample_with_the_exact_rank():
    assert plan.sample_size(1000) == 1000
    assert plan.sample_rank(37, 1000, 1000, attempt=0) == 37
    assert plan.sample_size(10**8) == plan.SAMPLE


@settings(max_examples=200)
@given(st.integers(plan.SAMPLE + 1, 10**9), st.floats(1e-6, 1.0))
def test_sample_rank_aims_above_the_expected_count_and_widens_on_retry(numel, ratio):
    k = plan.topk_count(ratio, numel)
    ranks = [plan.sample_rank(k, numel, plan.SAMPLE, a) for a in range(8)]
    expected = k * plan.SAMPLE / numel
    assert ranks[0] == 0 or ranks[0] > expected
    nonzero = [r for r in ranks if r]
    assert nonzero == sorted(nonzero) and ranks[-1] == 0  # ends admitting everything


def test_threshold_is_the_ranked_largest_and_zero_admits_all():
    bits = np.array([5, 1, 9, 7, 3], np.int32)
    assert plan.threshold(bits, 1) == 9 and plan.threshold(bits, 3) == 5
    assert plan.threshold(bits, 0) == 0


@pytest.mark.parametrize("rank", [0, 1, 100, 5000])
def test_capacity_leaves_room_and_never_exceeds_numel(rank):
    numel = 10**7
    cap = plan.capacity(numel, plan.SAMPLE, rank)
    assert cap <= numel
    assert rank == 0 and cap == numel or cap > rank * numel / plan.SAMPLE
