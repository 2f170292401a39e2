import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lepton_nb.compress import FP16, ErrorFeedback, Int8, TopK
from lepton_nb.compress.feedback import NOT_A_COMPRESSOR

from ._arrays import assert_topk, float_arrays

compressors = st.sampled_from([TopK(0.01), TopK(0.3), Int8(chunk=64), Int8(), FP16()])


@settings(max_examples=100, deadline=None)
@given(float_arrays(max_size=4000), compressors, st.integers(1, 3))
def test_what_is_sent_plus_the_new_residual_is_t_plus_the_old(x, c, steps):
    ef = ErrorFeedback(c)
    for step in range(steps):
        t = x * np.float32(step + 1)
        r_old = ef.residuals.get("w", np.zeros_like(t)).copy()
        p = ef.compress(t, "w")
        acc = t + r_old
        sent = c.decompress(p)
        r_new = ef.residuals["w"]
        assert r_new.dtype == np.float32 and r_new.shape == t.shape
        tol = 1e-6 * np.abs(acc) if c.codec != "topk" else 0  # topk: exact
        assert np.all(np.abs(sent + r_new - acc) <= tol)
        if c.codec == "topk":
            assert_topk(acc, c.k(acc.size), p.arrays["indices"], p.arrays["values"])
            assert np.all(r_new.reshape(-1)[p.arrays["indices"]] == 0)


@settings(max_examples=30, deadline=None)
@given(float_arrays(max_size=2000), compressors)
def test_the_fused_payload_is_the_plain_compression_of_t_plus_residual(x, c):
    ef = ErrorFeedback(c)
    ef.compress(x, 0)
    acc = x + ef.residuals[0]
    p = ef.compress(x, 0)
    ref = c.compress(acc)
    assert np.array_equal(c.decompress(p), c.decompress(ref))


def test_a_residual_of_another_shape_starts_again_from_zero():
    ef = ErrorFeedback(TopK(0.25))
    ef.compress(np.arange(8, dtype=np.float32), "w")
    assert ef.residuals["w"].any()
    t = np.ones((2, 3), np.float32)
    p = ef.compress(t, "w")
    assert ef.residuals["w"].shape == (2, 3)
    assert np.array_equal(ef.decompress(p) + ef.residuals["w"], t)  # the old one is gone


def test_torch_residuals_follow_the_tensor_and_its_kind():
    ef = ErrorFeedback(Int8(chunk=4))
    t = torch.randn(3, 5, dtype=torch.bfloat16)
    p = ef.compress(t, "w")
    r = ef.residuals["w"]
    assert isinstance(r, torch.Tensor) and r.dtype == torch.float32 and r.shape == (3, 5)
    assert isinstance(ef.decompress(p), torch.Tensor)
    ef.compress(t.float().numpy(), "w")  # same key, now numpy: the residual carries over
    assert isinstance(ef.residuals["w"], np.ndarray)


def test_state_dict_round_trips_residuals_on_the_host():
    ef = ErrorFeedback(TopK(0.1))
    ef.compress(torch.randn(50), "a")
    ef.compress(np.random.default_rng(0).standard_normal(30).astype(np.float32), "b")
    state = ef.state_dict()
    assert isinstance(state["residuals"]["a"], torch.Tensor)
    assert isinstance(state["residuals"]["b"], np.ndarray)
    other = ErrorFeedback(TopK(0.1))
    other.load_state_dict(state)
    for key in ("a", "b"):
        assert np.array_equal(np.asarray(other.residuals[key]), np.asarray(ef.residuals[key]))
    t = torch.randn(50)
    assert torch.equal(other.decompress(other.compress(t, "a")), ef.decompress(ef.compress(t, "a")))
    state["residuals"]["a"].zero_()  # a copy: the live residual is untouched
    assert ef.residuals["a"].any()


def test_delegates_to_the_compressor():
    c = Int8(chunk=8)
    ef = ErrorFeedback(c)
    assert ef.compressor is c and ef.payload_nbytes(100) == c.payload_nbytes(100)
    assert ef.layout((10,), np.float32).nbytes == ef.empty((10,), np.float32).nbytes
    p = ef.compress(np.ones(10, np.float32), "k")
    out = np.zeros(10, np.float32)
    ef.accumulate(p, out)
    assert np.allclose(out, 1.0) and repr(ef) == "ErrorFeedback(Int8(chunk=8, backend='auto'))"


@pytest.mark.parametrize("bad", [None, "topk", TopK])
def test_only_compressors_can_be_wrapped(bad):
    with pytest.raises(TypeError, match="ErrorFeedback wraps a TopK, Int8 or FP16 compressor"):
        ErrorFeedback(bad)
    assert "{type}" in NOT_A_COMPRESSOR
