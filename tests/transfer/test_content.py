import numpy as np
import pytest
import torch

from lepton_nb.transfer.content import as_array, content_key, meta_of, rebuild


def test_arrays_and_cpu_tensors_are_arrays_other_values_are_not():
    assert as_array(np.zeros(3))[1] == "numpy"
    assert as_array(torch.zeros(3))[1] == "torch"
    assert as_array(torch.zeros(3, dtype=torch.bfloat16))[1] == "torch:bfloat16"
    assert as_array([1, 2]) is None
    assert as_array(np.array([object()])) is None
    assert as_array(torch.zeros(2, requires_grad=True)) is None


def test_key_changes_with_any_byte_dtype_or_shape():
    a = np.arange(1000, dtype=np.float64)
    k = content_key(a, "numpy")
    b = a.copy()
    b[999] += 1e-12
    assert content_key(b, "numpy") != k
    assert content_key(a.reshape(10, 100), "numpy") != k
    assert content_key(a.view(np.int64), "numpy") != k
    assert content_key(a.copy(), "numpy") == k


@pytest.mark.parametrize(
    "value",
    [
        np.arange(12.0).reshape(3, 4),
        torch.arange(6, dtype=torch.int32),
        torch.ones(4, dtype=torch.bfloat16),
    ],
)
def test_rebuild_round_trip(value):
    arr, kind = as_array(value)
    back = rebuild(arr.reshape(-1).view(np.uint8), meta_of(arr, kind))
    assert type(back) is type(value)
    if isinstance(value, torch.Tensor):
        assert back.dtype == value.dtype and torch.equal(back, value)
    else:
        np.testing.assert_array_equal(back, value)
