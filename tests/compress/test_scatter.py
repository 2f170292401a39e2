import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lepton_nb.compress import scatter_add
from lepton_nb.compress.scatter import BAD_DST, LENGTHS, NOT_CONTIGUOUS, OUT_OF_RANGE


@st.composite
def scatters(draw):
    n = draw(st.integers(1, 3000))
    m = draw(st.integers(0, 3000))
    idx = draw(
        hnp.arrays(draw(st.sampled_from([np.int32, np.int64])), m, elements=st.integers(0, n - 1))
    )
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    vals = draw(hnp.arrays(dtype, m, elements=st.floats(-100, 100, width=32)))
    return np.zeros(n, dtype) + np.arange(n, dtype=dtype), idx, vals


@settings(max_examples=150, deadline=None)
@given(scatters())
def test_duplicates_accumulate_like_np_add_at(case):
    dst, idx, vals = case
    expected = dst.copy()
    np.add.at(expected, idx, vals)
    scatter_add(dst, idx, vals)
    assert np.array_equal(dst, expected)  # same order per element: bitwise equal


def test_torch_tensors_and_mixed_dtypes():
    dst = torch.zeros(2, 5)
    scatter_add(dst, torch.tensor([0, 9, 0]), torch.tensor([1.0, 2.0, 3.0], dtype=torch.bfloat16))
    assert dst.reshape(-1)[0] == 4 and dst[1, 4] == 2  # flat positions
    d = np.zeros(4, np.float64)
    scatter_add(d, np.array([3, 3], np.uint8), np.array([0.5, 0.25], np.float16))
    assert d[3] == 0.75


def test_bad_arguments_say_what_is_wrong():
    dst = np.zeros(4, np.float32)
    with pytest.raises(TypeError, match="dst must be a float32 or float64 array"):
        scatter_add(np.zeros(4, np.int32), np.array([0]), np.array([1.0]))
    with pytest.raises(ValueError, match="dst must be contiguous"):
        scatter_add(np.zeros(8, np.float32)[::2], np.array([0]), np.array([1.0]))
    with pytest.raises(TypeError, match="indices must hold integers"):
        scatter_add(dst, np.array([0.0]), np.array([1.0]))
    with pytest.raises(TypeError, match="values must hold floating-point values"):
        scatter_add(dst, np.array([0]), np.array([1]))
    with pytest.raises(TypeError, match="must be a numpy array or a torch tensor"):
        scatter_add(dst, [0], np.array([1.0]))
    with pytest.raises(ValueError, match="same number of elements, got 2 and 1"):
        scatter_add(dst, np.array([0, 1]), np.array([1.0]))
    with pytest.raises(IndexError, match=r"indices must lie in \[0, 4\).*got -1..2"):
        scatter_add(dst, np.array([-1, 2]), np.array([1.0, 1.0]))
    with pytest.raises(IndexError, match=r"got 0..4"):
        scatter_add(dst, np.array([0, 4]), np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="unknown backend"):
        scatter_add(dst, np.array([0]), np.array([1.0]), backend="gpu")
    assert not dst.any()
    assert all("{" in m for m in (BAD_DST, LENGTHS, OUT_OF_RANGE)) and NOT_CONTIGUOUS
