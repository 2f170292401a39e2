import numpy as np
import pytest
import torch

from lepton_nb.compress import FP16, Int8, Payload, TopK
from lepton_nb.compress.payload import BAD_BUFFER, Field, layout_nbytes


def test_arrays_are_typed_views_back_to_back_in_one_buffer():
    p = Int8(chunk=10).compress(np.arange(25, dtype=np.float32))
    assert p.buffer.dtype == np.uint8 and p.buffer.ndim == 1
    assert [f.name for f in p.fields] == ["scale", "q"]
    assert p.arrays["scale"].dtype == np.float32 and p.arrays["scale"].size == 3
    assert p.arrays["q"].dtype == np.int8 and p.arrays["q"].size == 25
    assert np.shares_memory(p.arrays["q"], p.buffer)
    assert p.nbytes == p.buffer.nbytes == 3 * 4 + 25 == Int8(chunk=10).payload_nbytes(25)


def test_topk_indices_are_uint16_to_65536_elements_int32_below_2_to_31_else_int64():
    u16, i32, i64, f32 = (np.dtype(d) for d in ("uint16", "int32", "int64", "float32"))
    # uint16 indices follow the values, so that odd k leaves every array aligned
    assert TopK(0.5).fields(10) == [Field("values", f32, 5), Field("indices", u16, 5)]
    assert TopK(0.5).fields(65536)[1] == Field("indices", u16, 32768)
    assert TopK(0.5).fields(65537)[0] == Field("indices", i32, 32768)
    assert TopK(1e-9).fields(2**31 - 1)[0].dtype == i32
    assert TopK(1e-9).fields(2**31)[0].dtype == i64
    assert TopK(0.01).payload_nbytes(1000) == 10 * 6
    assert TopK(0.01).payload_nbytes(65536) == 655 * 6
    assert TopK(0.01).payload_nbytes(65537) == 655 * 8


def test_tensor_shares_the_buffer_memory():
    p = FP16().compress(np.ones(8, np.float32))
    t = p.tensor()
    assert t.dtype == torch.uint8 and t.numel() == p.nbytes
    t.zero_()
    assert not p.buffer.any()


def test_like_rebuilds_the_layout_around_a_received_buffer():
    c = TopK(0.25)
    x = np.random.default_rng(0).standard_normal((4, 10)).astype(np.float32)
    p = c.compress(x)
    received = torch.from_numpy(p.buffer.copy())  # e.g. what torch.distributed filled
    q = p.like(received)
    assert q.codec == "topk" and q.shape == (4, 10) and q.dtype == np.float32
    assert q.arrays["values"].dtype == torch.float32
    assert np.array_equal(c.decompress(q), c.decompress(p))


def test_layout_is_an_empty_payload_of_the_same_size_for_any_rank():
    c = Int8(chunk=4)
    p = c.layout((3, 5), torch.float16)
    assert p.nbytes == c.payload_nbytes(15) == c.compress(np.ones((3, 5), np.float32)).nbytes
    assert p.params == {"chunk": 4} and p.dtype == torch.float16 and p.numel == 15
    assert c.empty((3, 5), np.float32).nbytes == p.nbytes


@pytest.mark.parametrize(
    "buffer",
    [np.zeros(7, np.uint8), np.zeros(8, np.int8), np.zeros((2, 4), np.uint8), torch.zeros(8)],
)
def test_a_buffer_of_the_wrong_size_or_type_is_refused(buffer):
    fields = [Field("values", np.dtype(np.float16), 4)]
    assert layout_nbytes(fields) == 8
    with pytest.raises(ValueError, match="must be a 1-D uint8 array of 8 bytes"):
        Payload("fp16", (4,), np.dtype(np.float32), fields, buffer)
    assert "{nbytes}" in BAD_BUFFER


def test_torch_uint8_buffers_give_torch_views():
    fields = [Field("indices", np.dtype(np.int64), 2), Field("values", np.dtype(np.float32), 2)]
    p = Payload("topk", (5,), torch.float32, fields, torch.zeros(24, dtype=torch.uint8))
    assert p.arrays["indices"].dtype == torch.int64 and p.arrays["values"].shape == (2,)
    assert not p.on_cuda and p.tensor() is p.buffer
