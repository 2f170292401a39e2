import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lepton_nb.transfer.codec import INT8_CHUNK, check_codec, decode, encode


@pytest.mark.parametrize("codec", ["lz4", "zstd"])
@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.uint8])
def test_lossless_codecs_give_the_same_bytes(codec, dtype):
    a = (np.arange(100_000) % 97).astype(dtype)
    payload = encode(a, codec)
    assert len(payload["data"]) < a.nbytes  # this data compresses
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
