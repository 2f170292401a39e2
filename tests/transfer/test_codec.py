import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lepton_nb.transfer.codec import (
    CHUNK_BYTES,
    INT8_CHUNK,
    check_codec,
    decode,
    decode_into,
    encode,
    payload_bytes,
)


@pytest.mark.parametrize("codec", ["lz4", "zstd"])
@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.uint8])
def test_lossless_codecs_give_the_same_bytes(codec, dtype):
    a = (np.arange(100_000) % 97).astype(dtype)
    payload = encode(a, codec)
    assert payload_bytes(payload) < a.nbytes  # this data compresses
    back = decode(payload, a.dtype.str, a.shape)
    assert back.dtype == a.dtype and np.array_equal(back, a)
    back[0] = 1  # the result is the rank's own, writable copy


def test_fp16_is_lossy_only_for_floats():
    a = np.linspace(-3, 3, 5000, dtype=np.float32)
    back = decode(encode(a, "fp16"), a.dtype.str, a.shape)
    assert (
        back.dtype == np.float32 and np.allclose(back, a, atol=2e-3) and not np.array_equal(back, a)
    )
    ints = np.arange(5000, dtype=np.int64)
    assert np.array_equal(decode(encode(ints, "fp16"), ints.dtype.str, ints.shape), ints)


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(np.float32, st.integers(1, 3 * INT8_CHUNK), elements=st.floats(-1e3, 1e3, width=32))
)
def test_int8_error_is_at_most_half_a_step_per_chunk(a):
    back = decode(encode(a, "int8"), a.dtype.str, a.shape)
    pad = np.concatenate([a, np.zeros((-a.size) % INT8_CHUNK, np.float32)]).reshape(-1, INT8_CHUNK)
    scale = np.abs(pad).max(axis=1) / 127.0
    err = np.abs(
        np.concatenate([back, np.zeros((-a.size) % INT8_CHUNK, np.float32)]).reshape(-1, INT8_CHUNK)
        - pad
    )
    assert np.all(err <= scale[:, None] / 2 + 1e-6 * (1 + np.abs(pad)))


def test_unknown_codec_names_the_choices():
    with pytest.raises(ValueError, match="use one of lz4, zstd, fp16, int8"):
        check_codec("gzip")


def test_smooth_floats_compress_where_plain_lz4_finds_nothing():
    t = np.linspace(0, 400 * np.pi, 2_000_000)
    noise = np.random.default_rng(0).standard_normal(t.size) * 1e-3
    a = (np.sin(t) + 0.5 * np.sin(3.1 * t) + noise).astype(np.float32)
    import lz4.frame

    assert len(lz4.frame.compress(a.tobytes())) > 0.99 * a.nbytes
    assert payload_bytes(encode(a, "lz4")) < 0.7 * a.nbytes  # bit planes first


def test_large_arrays_go_in_chunks_decoded_in_place():
    a = np.arange(CHUNK_BYTES // 8 * 2 + 3, dtype=np.int64)
    payload = encode(a, "lz4")
    assert len(payload["chunks"]) == 3
    out = np.empty(a.nbytes, np.uint8)
    decode_into(payload, a.dtype.str, a.shape, out)
    assert np.array_equal(out.view(np.int64), a)
    empty = np.zeros(0, np.float32)
    assert decode(encode(empty, "zstd"), empty.dtype.str, empty.shape).shape == (0,)
