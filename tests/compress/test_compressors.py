import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lepton_nb.compress import FP16, Int8, TopK
from lepton_nb.compress.compressors import BAD_CHUNK, BAD_RATIO, WRONG_CODEC

from ._arrays import assert_topk, float_arrays

ratios = st.floats(1e-4, 1.0).filter(lambda r: r > 0)
shapes = st.sampled_from([(-1,), (1, -1), (-1, 1)])


@settings(max_examples=150, deadline=None)
@given(float_arrays(), ratios, shapes)
def test_topk_keeps_exactly_k_of_the_largest_magnitudes(x, ratio, shape):
    x = x.reshape(shape)
    c = TopK(ratio)
    k = max(1, round(ratio * x.size))
    p = c.compress(x)
    assert c.k(x.size) == k and p.nbytes == c.payload_nbytes(x.size) == 6 * k  # uint16 idx
    assert p.arrays["indices"].dtype == np.uint16
    idx, vals = p.arrays["indices"], p.arrays["values"]
    assert_topk(x, k, idx, vals)
    assert np.all(np.diff(idx) > 0)  # the CPU twin gives them in index order
    y = c.decompress(p)
    assert type(y) is np.ndarray and y.shape == x.shape and y.dtype == np.float32
    expected = np.zeros(x.size, np.float32)
    expected[idx] = x.reshape(-1)[idx]
    assert np.array_equal(y.reshape(-1), expected)


@settings(max_examples=150, deadline=None)
@given(float_arrays(), st.integers(1, 700))
def test_int8_error_is_at_most_half_a_step_of_its_chunk(x, chunk):
    c = Int8(chunk=chunk)
    p = c.compress(x)
    scale, q = p.arrays["scale"], p.arrays["q"]
    n_chunks = -(-x.size // chunk)
    assert scale.size == n_chunks and p.nbytes == 4 * n_chunks + x.size
    padded = np.zeros(n_chunks * chunk, np.float32)
    padded[: x.size] = np.abs(x)
    amax = padded.reshape(n_chunks, chunk).max(1)
    tiny = np.float32(2.0**-126)  # non-zero chunks: no subnormal scale
    assert np.array_equal(scale, np.where(amax > 0, np.maximum(amax / np.float32(127), tiny), 0))
    assert np.abs(q.astype(np.int32)).max() <= 127
    y = c.decompress(p)
    step = np.repeat(scale, chunk)[: x.size]
    assert np.all(np.abs(y - x) <= step / 2 * (1 + 1e-5))
    assert np.all(q[np.repeat(scale == 0, chunk)[: x.size]] == 0)  # all-zero chunks


@settings(max_examples=100, deadline=None)
@given(float_arrays())
def test_fp16_is_numpys_cast(x):
    x = x * np.float32(10)  # some past 65504
    p = FP16().compress(x)
    with np.errstate(over="ignore"):
        ref = x.astype(np.float16)
    assert np.array_equal(p.arrays["values"].view(np.uint16), ref.view(np.uint16))
    assert np.array_equal(FP16().decompress(p), ref.astype(np.float32))
    assert p.nbytes == 2 * x.size


@settings(max_examples=60, deadline=None)
@given(
    float_arrays(max_size=3000),
    st.sampled_from([TopK(0.05), TopK(1.0), Int8(chunk=100), Int8(), FP16()]),
)
def test_accumulate_adds_what_decompress_gives(x, c):
    p = c.compress(x)
    out = np.random.default_rng(0).standard_normal(x.size).astype(np.float32)
    expected = out + c.decompress(p)
    c.accumulate(p, out)
    assert np.array_equal(out, expected)
    t = torch.zeros(x.size)
    c.accumulate(p, t)
    c.accumulate(p, t)
    assert np.allclose(t.numpy(), 2 * c.decompress(p), rtol=1e-6, atol=0)


@pytest.mark.parametrize("c", [TopK(0.1), Int8(chunk=16), FP16()], ids=repr)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_torch_in_torch_out_with_the_original_dtype(c, dtype):
    t = torch.randn(6, 20).to(dtype)
    p = c.compress(t)
    assert p.dtype == dtype and p.shape == (6, 20)
    y = c.decompress(p)
    assert isinstance(y, torch.Tensor) and y.dtype == dtype and y.shape == t.shape
    ref = c.decompress(c.compress(t.float().numpy()))
    assert torch.equal(y, torch.from_numpy(ref).to(dtype))


@pytest.mark.parametrize("c", [TopK(0.1), Int8(chunk=16), FP16()], ids=repr)
def test_numpy_float16_comes_back_as_float16(c):
    x = np.random.default_rng(0).standard_normal((5, 7)).astype(np.float16)
    y = c.decompress(c.compress(x))
    assert type(y) is np.ndarray and y.dtype == np.float16 and y.shape == (5, 7)


@pytest.mark.parametrize("c", [TopK(0.5), Int8(), FP16()], ids=repr)
def test_empty_tensors_compress_to_empty_payloads(c):
    p = c.compress(np.zeros((0, 3), np.float32))
    assert c.decompress(p).shape == (0, 3)
    assert p.nbytes == c.payload_nbytes(0) == 0


@pytest.mark.parametrize("ratio", [0, -0.1, 1.5, float("nan"), "0.1", None, True])
def test_topk_ratio_must_be_in_0_1(ratio):
    with pytest.raises(ValueError, match=r"ratio must be a number in \(0, 1\]"):
        TopK(ratio)
    assert "{ratio!r}" in BAD_RATIO


@pytest.mark.parametrize("chunk", [0, -5, 2.5, None])
def test_int8_chunk_must_be_positive(chunk):
    with pytest.raises(ValueError, match="chunk must be a positive integer"):
        Int8(chunk=chunk)
    assert "{chunk!r}" in BAD_CHUNK


@pytest.mark.parametrize("backend", ["gpu", "CUDA", ""])
def test_unknown_backend_is_a_value_error(backend):
    with pytest.raises(ValueError, match="unknown backend .* use 'auto', 'cpu' or 'cuda'"):
        FP16(backend=backend)


def test_decoding_another_codecs_payload_is_refused():
    p = FP16().compress(np.ones(4, np.float32))
    with pytest.raises(ValueError, match="Int8 cannot decode a 'fp16' payload"):
        Int8().decompress(p)
    with pytest.raises(ValueError, match="TopK cannot decode a 'ndarray' payload"):
        TopK().accumulate(np.ones(4), np.zeros(4, np.float32))
    assert "{codec!r}" in WRONG_CODEC


@pytest.mark.parametrize("bad", [np.arange(10), torch.arange(10), [1.0, 2.0]])
def test_bad_input_is_a_type_error(bad):
    with pytest.raises(TypeError, match="numpy array or a torch tensor|floating-point"):
        TopK(0.5).compress(bad)


def test_repr_names_the_parameters():
    assert repr(TopK(0.01)) == "TopK(ratio=0.01, backend='auto')"
    assert repr(Int8(chunk=64, backend="cpu")) == "Int8(chunk=64, backend='cpu')"
    assert repr(FP16()) == "FP16(backend='auto')"
