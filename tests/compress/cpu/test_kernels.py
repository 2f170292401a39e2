import numba
import numpy as np

from lepton_nb.compress.cpu import kernels as K


def test_fp16_kernels_convert_like_numpy_with_any_tail():
    x = np.random.default_rng(1).standard_normal(1000 + 37).astype(np.float32) * 3e4
    h = np.empty(x.size, np.int16)
    K.fp16(x.view(np.int32), h)
    with np.errstate(over="ignore"):
        assert np.array_equal(h.view(np.float16), x.astype(np.float16))
    out = np.ones_like(x)
    K.fp16_expand(h, out, True)
    assert np.array_equal(out, h.view(np.float16).astype(np.float32) + 1)


def test_int8_scale_floor_and_rounding_half_to_even():
    x = np.array([127.0, 0.5, -1.5, 1e-40, 0.0, 0.0, 0.0], np.float32)
    q, scale = np.empty(7, np.int8), np.empty(3, np.float32)
    K.int8(x, 3, q, scale)
    assert scale[0] == 1.0 and list(q[:3]) == [127, 0, -2]  # ties to even
    assert scale[1] == np.float32(2.0**-126)  # a subnormal chunk: the floor
    assert scale[2] == 0 and q[6] == 0  # an all-zero chunk


def test_scatter_add_applies_each_entry_once_whatever_the_thread_count():
    idx = np.array([0, 5, 5, 9, 2**40], np.int64)  # the last one lies outside: ignored
    vals = np.ones(5, np.float32)
    for parts in (1, 2, 3, 16):
        dst = np.zeros(10, np.float32)
        K.scatter_add(dst, idx, vals, parts)
        assert list(dst) == [1, 0, 0, 0, 0, 2, 0, 0, 0, 1]
    assert numba.get_num_threads() >= 1
