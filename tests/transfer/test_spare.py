import os

from lepton_nb.transfer import segment
from lepton_nb.transfer.spare import Spare


def shm_used() -> int:
    st = os.statvfs("/dev/shm")
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def test_recycle_prepares_a_spare_that_fits_and_close_frees_it():
    base = shm_used()
    spare = Spare(lambda: True)
    used = segment.allocate(8 << 20)
    spare.recycle([used])
    spare.settle(30)
    assert used.fd == -1  # let go
    assert spare.take(64 << 20) is None  # too small for this
    assert spare.take(1 << 20) is None  # would waste more than half
    seg = spare.take(6 << 20)
    assert seg is not None and seg.size == 8 << 20 and seg.view is not None
    assert spare.take(6 << 20) is None  # taken
    spare.recycle([seg])
    spare.settle(30)
    spare.close()
    assert shm_used() - base < 1 << 20


def test_no_spare_when_the_cluster_is_not_running_or_disabled():
    spare = Spare(lambda: False)
    spare.recycle([segment.allocate(1 << 20)])
    spare.settle(30)
    assert spare.take(1 << 20) is None
    on = Spare(lambda: True)
    on.enabled = False
    on.recycle([segment.allocate(1 << 20)])
    on.settle(30)
    assert on.take(1 << 20) is None
