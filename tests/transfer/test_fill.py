import numpy as np
import pytest
import torch

from lepton_nb.transfer import fill, segment
from lepton_nb.transfer.content import PARALLEL_HASH_BYTES, as_array, content_key


def _bytes(seg, offset, nbytes):
    return bytes(seg.view[offset : offset + nbytes])


@pytest.mark.parametrize(
    "nbytes", [0, 1, 4095, 3 * fill.BLOCK_BYTES + 17, PARALLEL_HASH_BYTES + 8]
)
def test_keys_are_content_keys_and_the_bytes_land_at_their_offsets(nbytes):
    rng = np.random.default_rng(nbytes)
    a = rng.integers(0, 255, nbytes, dtype=np.uint8)
    b = np.arange(1000, dtype=np.float64)
    offsets, size = segment.layout([a.nbytes, b.nbytes])
    seg = segment.allocate(size)
    try:
        keys = fill.fill(seg, [a, b], offsets, ["numpy", None])
        assert keys == [content_key(a, "numpy"), None]
        assert _bytes(seg, offsets[0], a.nbytes) == a.tobytes()
        assert _bytes(seg, offsets[1], b.nbytes) == b.tobytes()
        flat, _ = segment.attach(seg.path, offsets[1], b.nbytes)  # what a rank maps
        assert np.array_equal(flat.view(np.float64), b)
    finally:
        seg.close()


def test_torch_kinds_key_as_content_key():
    t = torch.ones(3 * fill.BLOCK_BYTES // 2, dtype=torch.bfloat16)
    arr, kind = as_array(t)
    offsets, size = segment.layout([arr.nbytes])
    seg = segment.allocate(size)
    try:
        assert fill.fill(seg, [arr], offsets, [kind]) == [content_key(arr, kind)]
    finally:
        seg.close()


def test_a_part_that_does_not_fit_is_refused():
    seg = segment.allocate(segment.PAGE)
    try:
        with pytest.raises(ValueError):
            fill.fill(seg, [np.ones(segment.PAGE)], [0], ["numpy"])
    finally:
        seg.close()
