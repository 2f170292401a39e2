import numpy as np
import pytest
import torch

from lepton_nb.compress import tensors


def test_float32_contiguous_numpy_is_flattened_without_a_copy():
    x = np.ones((3, 4), np.float32)
    f = tensors.flatten(x)
    assert np.shares_memory(f.data, x) and f.shape == (3, 4) and f.numel == 12
    assert f.dtype == np.float32 and f.device is None


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_other_float_dtypes_are_converted_and_restored(dtype):
    x = np.arange(6, dtype=dtype).reshape(2, 3)
    f = tensors.flatten(x)
    assert f.data.dtype == np.float32
    back = tensors.restore(f.data, f.shape, f.dtype)
    assert back.dtype == dtype and np.array_equal(back, x)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_torch_tensors_come_back_as_torch_of_their_dtype(dtype):
    t = torch.arange(6, dtype=dtype).reshape(3, 2).T  # not contiguous either
    f = tensors.flatten(t)
    assert isinstance(f.data, np.ndarray) and f.data.dtype == np.float32
    back = tensors.restore(f.data, f.shape, f.dtype)
    assert isinstance(back, torch.Tensor) and back.dtype == dtype and torch.equal(back, t)


def test_tensors_needing_grad_are_read_without_it():
    t = torch.ones(4, requires_grad=True)
    assert np.array_equal(tensors.flatten(t).data, np.ones(4, np.float32))


@pytest.mark.parametrize("bad", [np.arange(4), torch.arange(4), np.ones(3, bool)])
def test_non_float_input_is_a_type_error(bad):
    with pytest.raises(TypeError, match="must hold floating-point values"):
        tensors.flatten(bad)


@pytest.mark.parametrize("bad", [[1.0, 2.0], 3.0, "x"])
def test_non_array_input_is_a_type_error(bad):
    with pytest.raises(TypeError, match="must be a numpy array or a torch tensor"):
        tensors.flatten(bad)


def test_accumulation_targets_must_be_flat_float32_of_the_right_size():
    assert isinstance(tensors.check_float_out(torch.zeros(4), 4), np.ndarray)
    with pytest.raises(TypeError, match="out must be float32"):
        tensors.check_float_out(np.zeros(4), 4)
    with pytest.raises(ValueError, match="contiguous float32 array of 4 elements"):
        tensors.check_float_out(np.zeros(5, np.float32), 4)
    with pytest.raises(ValueError, match="contiguous float32 array of 4 elements"):
        tensors.check_float_out(np.zeros(8, np.float32)[::2], 4)
    with pytest.raises(TypeError, match="must be a numpy array or a torch tensor"):
        tensors.check_float_out([0.0] * 4, 4)
