"""Top-k payloads of tensors up to 65536 elements carry uint16 indices (6 bytes a value)."""

import numpy as np
import pytest
import torch

from lepton_nb.compress import ErrorFeedback, MomentumCorrection, TopK, scatter_add
from lepton_nb.compress.indices import index_dtype, narrow, wide_like, widen

from ._arrays import assert_topk


def _with_peak_at_the_end(numel: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal(numel).astype(np.float32)
    x[-1] = -100.0  # the largest magnitude sits at the last index
    return x


def _copy(a) -> np.ndarray:
    return a.numpy().copy() if isinstance(a, torch.Tensor) else a.copy()


@pytest.mark.parametrize(
    ("numel", "dtype", "per_value"),
    [(1, "uint16", 6), (65536, "uint16", 6), (65537, "int32", 8), (2**31 - 1, "int32", 8)],
)
def test_index_dtype_and_payload_size_by_element_count(numel, dtype, per_value):
    assert index_dtype(numel) == np.dtype(dtype)
    c = TopK(0.001)
    assert c.payload_nbytes(numel) == per_value * c.k(numel)
    assert index_dtype(2**31) == np.int64 and TopK(1e-9).payload_nbytes(2**31) == 2 * 12


@pytest.mark.parametrize(("numel", "dtype"), [(65536, np.uint16), (65537, np.int32)])
def test_compressed_payloads_have_that_dtype(numel, dtype):
    x = _with_peak_at_the_end(numel)
    p = TopK(0.01).compress(x)
    idx = p.arrays["indices"]
    assert idx.dtype == dtype and p.nbytes == TopK(0.01).payload_nbytes(numel)
    assert idx[-1] == numel - 1  # ascending from the CPU twin: the peak comes last
    assert_topk(x, TopK(0.01).k(numel), idx, p.arrays["values"])


def test_topk_of_a_38282_parameter_model_is_at_least_50x_smaller():
    c = TopK(0.01)
    assert c.k(38_282) == 383  # rounded up past 1%
    p = c.compress(np.ones(38_282, np.float32))
    assert p.nbytes == c.payload_nbytes(38_282) == 383 * 6
    assert 38_282 * 4 / p.nbytes >= 50


@pytest.mark.parametrize("k_odd", [True, False])
def test_round_trip_and_accumulate_with_the_last_index_65535(k_odd):
    x = _with_peak_at_the_end(65536)
    c = TopK(655 / 65536 if k_odd else 656 / 65536)
    p = c.compress(x.reshape(256, 256))
    idx = p.arrays["indices"]
    assert idx.dtype == np.uint16 and idx.size == (655 if k_odd else 656) and idx[-1] == 65535
    expected = np.zeros(65536, np.float32)
    expected[idx] = x[idx]
    y = c.decompress(p)
    assert y.shape == (256, 256) and np.array_equal(y.reshape(-1), expected)
    out = np.ones(65536, np.float32)
    c.accumulate(p, out)
    assert np.array_equal(out, expected + 1) and out[65535] == -99
    t = torch.zeros(65536)
    c.accumulate(p, t)
    assert torch.equal(t, torch.from_numpy(expected))


def test_payloads_around_torch_buffers_decode_the_same():
    # what a collective receives: the same bytes in a torch uint8 tensor; k odd (655)
    x = _with_peak_at_the_end(65536, seed=1)
    c = TopK(655 / 65536)
    p = c.compress(x)
    q = p.like(torch.from_numpy(p.buffer.copy()))
    assert q.arrays["indices"].dtype == torch.uint16 and q.arrays["values"].dtype == torch.float32
    assert np.array_equal(c.decompress(q), c.decompress(p))
    t = torch.zeros(65536)
    c.accumulate(q, t)
    assert torch.equal(t, torch.from_numpy(c.decompress(p)))
    p2 = c.compress(torch.from_numpy(x))  # torch in: torch out, same bytes
    assert np.array_equal(p2.buffer, p.buffer)


def test_scatter_add_of_a_uint16_payload():
    x = _with_peak_at_the_end(65536, seed=2)
    c = TopK(0.01)
    p = c.compress(x)
    d = np.zeros(65536, np.float32)
    scatter_add(d, p.arrays["indices"], p.arrays["values"])
    assert np.array_equal(d, c.decompress(p)) and d[65535] == -100
    q = p.like(torch.from_numpy(p.buffer.copy()))
    t = torch.zeros(65536, dtype=torch.float64)
    scatter_add(t, q.arrays["indices"], q.arrays["values"])  # torch uint16 indices
    assert np.array_equal(t.numpy(), d.astype(np.float64))


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_error_feedback_zeroes_the_sent_positions(kind):
    x = _with_peak_at_the_end(65536, seed=3)
    ef = ErrorFeedback(TopK(0.01))
    for step in range(3):
        before = _copy(ef.residuals["w"]) if step else np.zeros(65536, np.float32)
        acc = before + x
        p = ef.compress(torch.from_numpy(x) if kind == "torch" else x, "w")
        idx = p.arrays["indices"]
        assert idx.dtype == np.uint16
        assert_topk(acc, 655, idx, p.arrays["values"])
        r = _copy(ef.residuals["w"])
        expected = acc.copy()
        expected[idx] = 0
        assert np.array_equal(r, expected)
    assert 65535 in idx


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_momentum_correction_masks_uint16_indices(kind):
    g = _with_peak_at_the_end(65536, seed=4)
    mc = MomentumCorrection(TopK(0.01), momentum=0.9)
    p = mc.compress(torch.from_numpy(g.copy()) if kind == "torch" else g, "w")
    idx = p.arrays["indices"]
    assert idx.dtype == np.uint16 and idx[-1] == 65535
    u = _copy(mc.velocities["w"])
    expected = g.copy()
    expected[idx] = 0
    assert np.array_equal(u, expected)


def test_narrow_and_widen_numpy_and_torch():
    wide = np.array([0, 1, 32767, 32768, 65535], np.int32)
    for idx in (np.zeros(5, np.uint16), torch.zeros(10, dtype=torch.uint8).view(torch.uint16)):
        w = wide_like(idx)
        assert str(w.dtype) in ("int32", "torch.int32") and tuple(w.shape) == (5,)
        narrow(wide if isinstance(idx, np.ndarray) else torch.from_numpy(wide), idx)
        back = widen(idx)
        assert str(back.dtype) in ("int32", "torch.int32")
        assert np.array_equal(np.asarray(back), wide)
    same = np.arange(3, dtype=np.int32)
    assert widen(same) is same
