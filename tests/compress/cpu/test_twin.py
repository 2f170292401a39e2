"""The CPU twin's top-k paths: retry with a lower threshold, overflowing chunks, threads."""

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lepton_nb.compress import TopK, cpu, plan

from .._arrays import assert_topk, float_arrays


def _topk(x, k):
    idx, val = np.empty(k, np.int32), np.empty(k, np.float32)
    cpu.topk(x, k, idx, val)
    return idx, val


@pytest.fixture
def small_sample(monkeypatch):
    """Sample 64 elements, so that tensors of a few thousand take the sampled path."""
    monkeypatch.setattr(plan, "SAMPLE", 64)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(float_arrays(min_size=200), st.floats(1e-3, 1.0))
def test_sampled_thresholds_still_give_the_exact_top_k(small_sample, x, ratio):
    k = plan.topk_count(ratio, x.size)
    assert_topk(x, k, *_topk(x, k))


def test_a_threshold_that_admits_too_few_is_lowered(small_sample, monkeypatch):
    monkeypatch.setattr(plan, "MARGIN", 0.01)
    monkeypatch.setattr(plan, "SIGMAS", 0.0)
    x = np.random.default_rng(0).standard_normal(5000).astype(np.float32)
    assert_topk(x, 500, *_topk(x, 500))


def test_a_chunk_holding_more_than_its_share_is_collected_again(monkeypatch):
    monkeypatch.setattr(plan, "capacity", lambda numel, samples, rank: 8)
    x = np.random.default_rng(1).standard_normal(100_000).astype(np.float32)
    x[:500] *= 1000  # every candidate in the first chunk
    assert_topk(x, 300, *_topk(x, 300))
    r, t = np.zeros_like(x), x.copy()
    idx, val = np.empty(300, np.int32), np.empty(300, np.float32)
    cpu.topk_feedback(r, t, 300, idx, val)
    assert_topk(x, 300, idx, val) and not r[idx].any()


@pytest.mark.parametrize("fill", [0.0, 1.0])
def test_all_equal_magnitudes(fill):
    x = np.full(70_000, fill, np.float32)
    x[::2] *= -1
    idx, val = _topk(x, 700)
    assert_topk(x, 700, idx, val)
    assert np.array_equal(idx, np.arange(700))  # ties: the first ones


def test_nan_counts_as_largest_like_torch_topk():
    x = np.arange(1000, dtype=np.float32)
    x[[3, 500]] = np.nan
    idx, _ = _topk(x, 3)
    assert list(idx) == [3, 500, 999]


@pytest.mark.parametrize("threads", [1, 2])
def test_any_thread_count_gives_the_same_payload(threads):
    x = np.random.default_rng(2).standard_normal(300_001).astype(np.float32)
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        payloads = [c.compress(x).buffer for c in (TopK(0.01), TopK(0.3))]
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(payloads[0], TopK(0.01).compress(x).buffer)
    assert np.array_equal(payloads[1], TopK(0.3).compress(x).buffer)
