"""The CPU and CUDA twins agree, kernel by kernel, under the CUDA simulator.

Not collected on its own (no ``test_`` prefix): NUMBA_ENABLE_CUDASIM=1 must be
set before numba.cuda is first imported, so ``test_twin.py`` runs this file in a
subprocess with it set. Sizes stay small and examples few: the simulator runs
every CUDA thread as a Python thread.
"""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lepton_nb.compress import FP16, ErrorFeedback, Int8, TopK, plan, scatter_add
from lepton_nb.compress.cuda import kernels as cuda_kernels

from .._arrays import assert_topk, distinct_arrays, float_arrays

pytestmark = pytest.mark.skipif(
    os.environ.get("NUMBA_ENABLE_CUDASIM") != "1", reason="needs NUMBA_ENABLE_CUDASIM=1"
)
few = settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))


def _pair(cls, **kw):
    return cls(backend="cpu", **kw), cls(backend="cuda", **kw)


def test_the_cuda_backend_runs_the_simulator():
    assert cuda_kernels.SIMULATOR
    assert TopK(0.5, backend="cuda").twin(False).NAME == "cuda"


@few
@given(distinct_arrays(max_size=1500), st.floats(1e-3, 0.5))
def test_topk_same_set_and_values(x, ratio):
    a, b = _pair(TopK, ratio=ratio)
    pa, pb = a.compress(x), b.compress(x)
    order = np.argsort(pb.arrays["indices"])
    assert np.array_equal(pa.arrays["indices"], pb.arrays["indices"][order])
    assert np.array_equal(pa.arrays["values"], pb.arrays["values"][order])
    assert np.array_equal(a.decompress(pa), b.decompress(pb))


@few
@given(float_arrays(max_size=800), st.floats(1e-3, 0.5))
def test_topk_with_ties_gives_a_true_top_k(x, ratio):
    c = TopK(ratio, backend="cuda")
    p = c.compress(x)
    assert_topk(x, c.k(x.size), p.arrays["indices"], p.arrays["values"])


def test_topk_sampled_retried_and_recollected(monkeypatch):
    monkeypatch.setattr(plan, "SAMPLE", 64)  # sample at random positions
    monkeypatch.setattr(plan, "MARGIN", 0.01)  # aim too high: retry with a lower threshold
    monkeypatch.setattr(plan, "SIGMAS", 0.0)
    monkeypatch.setattr(plan, "capacity", lambda numel, samples, rank: 4)  # overflow
    x = np.random.default_rng(0).standard_normal(2000).astype(np.float32)
    p = TopK(0.05, backend="cuda").compress(x)
    assert_topk(x, 100, p.arrays["indices"], p.arrays["values"])


@few
@given(distinct_arrays(max_size=1200), st.floats(1e-3, 0.5))
def test_topk_feedback_same_payload_and_residual(x, ratio):
    a, b = (ErrorFeedback(c) for c in _pair(TopK, ratio=ratio))
    for _step in range(2):
        pa, pb = a.compress(x, "w"), b.compress(x, "w")
        assert np.array_equal(a.decompress(pa), b.decompress(pb))
        assert np.array_equal(a.residuals["w"], b.residuals["w"])


def test_topk_uint16_indices_agree():
    # every tensor up to 65536 elements has uint16 indices; index 65535 itself is checked on
    # the CPU (tests/compress/test_indices.py): simulating 65536 threads takes minutes
    n = 4096
    x = np.random.default_rng(1).standard_normal(n).astype(np.float32)
    x[-1] = 50.0  # the last index is sent
    a, b = (ErrorFeedback(c) for c in _pair(TopK, ratio=45 / n))  # k odd
    pa, pb = a.compress(x, "w"), b.compress(x, "w")
    assert pa.arrays["indices"].dtype == pb.arrays["indices"].dtype == np.uint16
    order = np.argsort(pb.arrays["indices"])
    assert np.array_equal(pa.buffer[: 4 * 45], pb.buffer[: 4 * 45].reshape(45, 4)[order].ravel())
    assert np.array_equal(pa.arrays["indices"], pb.arrays["indices"][order])
    assert pa.arrays["indices"][-1] == n - 1
    assert np.array_equal(a.residuals["w"], b.residuals["w"])
    oa, ob = np.ones(n, np.float32), np.ones(n, np.float32)
    a.accumulate(pa, oa)
    b.accumulate(pb, ob)
    assert np.array_equal(oa, ob) and oa[n - 1] == 51


@few
@given(float_arrays(max_size=1500), st.integers(1, 600))
def test_int8_same_bytes_and_expansion(x, chunk):
    a, b = _pair(Int8, chunk=chunk)
    pa, pb = a.compress(x), b.compress(x)
    assert np.array_equal(pa.buffer, pb.buffer)
    assert np.array_equal(a.decompress(pa), b.decompress(pb))
    oa = np.linspace(-1, 1, x.size, dtype=np.float32)
    ob = oa.copy()
    a.accumulate(pa, oa)
    b.accumulate(pb, ob)
    assert np.array_equal(oa, ob)


@few
@given(float_arrays(max_size=600), st.integers(16, 300))  # small chunks: one block each, slow here
def test_int8_feedback_same_bytes_and_residual(x, chunk):
    a, b = (ErrorFeedback(c) for c in _pair(Int8, chunk=chunk))
    for _step in range(2):
        pa, pb = a.compress(x, "w"), b.compress(x, "w")
        assert np.array_equal(pa.buffer, pb.buffer)
        assert np.allclose(a.residuals["w"], b.residuals["w"], rtol=1e-6, atol=1e-30)


@few
@given(float_arrays(max_size=1500))
def test_fp16_same_bits_and_expansion(x):
    x = x * np.float32(10)
    a, b = _pair(FP16)
    pa, pb = a.compress(x), b.compress(x)
    assert np.array_equal(pa.buffer, pb.buffer)
    assert np.array_equal(a.decompress(pa), b.decompress(pb))
    oa = np.ones(x.size, np.float32)
    ob = oa.copy()
    a.accumulate(pa, oa)
    b.accumulate(pb, ob)
    assert np.array_equal(oa, ob)


@few
@given(float_arrays(max_size=1000))
def test_fp16_feedback_same_bits_and_residual(x):
    a, b = (ErrorFeedback(c) for c in _pair(FP16))
    for _step in range(2):
        pa, pb = a.compress(x, "w"), b.compress(x, "w")
        assert np.array_equal(pa.buffer, pb.buffer)
        assert np.array_equal(a.residuals["w"], b.residuals["w"])


@few
@given(
    st.integers(1, 500),
    st.sampled_from([np.int32, np.int64]),
    st.sampled_from([np.float32, np.float64]),
    st.data(),
)
def test_scatter_add_same_sums(n, index_type, dtype, data):
    m = data.draw(st.integers(0, 800))
    idx = data.draw(hnp.arrays(index_type, m, elements=st.integers(0, n - 1)))
    vals = data.draw(hnp.arrays(dtype, m, elements=st.floats(-100, 100, width=32)))
    da, db = np.zeros(n, dtype), np.zeros(n, dtype)
    scatter_add(da, idx, vals, backend="cpu")
    scatter_add(db, idx, vals, backend="cuda")
    np.add.at(expected := np.zeros(n, dtype), idx, vals)
    assert np.allclose(da, db, rtol=1e-5, atol=1e-3) and np.array_equal(da, expected)


def test_every_cuda_kernel_ran_in_this_session():  # keep last: the tests above launch them
    from lepton_nb.compress import cuda

    assert set(cuda._compiled) == set(cuda_kernels.KERNELS)
