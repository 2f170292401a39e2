import os
import warnings

import numpy as np
import pytest

from lepton_nb.transfer import SpillWarning, segment

#: lists all of /dev/shm
pytestmark = pytest.mark.alone


def _segment_with(parts, **kw):
    offsets, size = segment.layout([p.nbytes for p in parts])
    seg = segment.allocate(size, **kw)
    segment.write(seg, parts, offsets)
    return seg, offsets


def test_segment_is_unnamed_private_and_mapped_copy_on_write():
    before = set(os.listdir("/dev/shm"))
    a = np.arange(3_000_000, dtype=np.float64)
    b = np.arange(10, dtype=np.int8)
    seg, offsets = _segment_with([a, b])
    try:
        assert set(os.listdir("/dev/shm")) == before  # no name to leak
        assert seg.path == f"/proc/{os.getpid()}/fd/{seg.fd}" and not seg.spilled
        assert oct(os.fstat(seg.fd).st_mode & 0o777) == "0o600"
        assert all(o % segment.PAGE == 0 for o in offsets)
        flat, m = segment.attach(seg.path, offsets[0], a.nbytes)
        view = flat.view(np.float64)
        assert np.array_equal(view, a)
        addr = segment.mapping_address(m)
        assert segment.pristine(addr) is True
        view[5] = -1.0  # private to this mapping
        assert segment.pristine(addr) is False
        again, _ = segment.attach(seg.path, offsets[0], a.nbytes)
        assert again.view(np.float64)[5] == 5.0
        small, _ = segment.attach(seg.path, offsets[1], b.nbytes)
        assert np.array_equal(small.view(np.int8), b)
    finally:
        seg.close()
    assert view[0] == 0.0 and view[5] == -1.0  # mappings outlive the notebook's hold


def test_absent_shm_spills_with_a_warning(tmp_path):
    with pytest.warns(SpillWarning, match="cannot hold"):
        seg, _ = _segment_with(
            [np.ones(1000)], shm_dir=str(tmp_path / "absent"), spill_dir=str(tmp_path / "spill")
        )
    assert seg.spilled
    flat, _ = segment.attach(seg.path, 0, 8000)
    assert np.array_equal(flat.view(np.float64), np.ones(1000))
    seg.close()
    assert os.listdir(tmp_path / "spill") == []
    assert segment.allocate(10, shm_dir=str(tmp_path / "absent"), spill=False) is None


@pytest.fixture
def tiny_shm(tmpfs):
    """A real 1 MiB tmpfs."""
    return tmpfs("tiny", "1m")


def test_too_small_shm_spills(tiny_shm, tmp_path):
    big = np.ones(1 << 19)  # 4 MiB > 1 MiB
    with pytest.warns(SpillWarning):
        seg, _ = _segment_with([big], shm_dir=tiny_shm, spill_dir=str(tmp_path / "spill"))
    assert seg.spilled and os.listdir(tiny_shm) == []
    flat, _ = segment.attach(seg.path, 0, big.nbytes)
    assert np.array_equal(flat.view(np.float64), big)
    seg.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small, _ = _segment_with([np.ones(1000)], shm_dir=tiny_shm)
    assert not small.spilled
    small.close()
