import os

import pytest

from lepton_nb.transfer import segment
from lepton_nb.transfer.spare import Spare

#: counts all of /dev/shm
pytestmark = pytest.mark.alone


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


def test_keep_takes_back_an_unused_segment_only_when_no_spare_is_held():
    spare = Spare(lambda: True)
    first, second = segment.allocate(4 << 20), segment.allocate(4 << 20)
    spare.keep(first)
    spare.keep(second)  # one is held already: this one is let go
    assert second.fd == -1 and first.fd >= 0
    assert spare.take(4 << 20) is first
    spare.close()
    first.close()


def _maps_inode(pid, seg):
    ino = os.fstat(seg.fd).st_ino
    with open(f"/proc/{pid}/maps") as f:
        return any(line.split()[4:5] == [str(ino)] for line in f)


def test_a_lent_segment_is_reused_once_no_rank_maps_it():
    import subprocess
    import sys
    import time

    seg = segment.allocate(8 << 20)
    holder = (
        "import mmap, sys\n"
        "f = open(sys.argv[1], 'rb')\n"
        "m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)\n"
        "sys.stdin.read()\n"
    )
    rank = subprocess.Popen([sys.executable, "-c", holder, seg.path], stdin=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not _maps_inode(rank.pid, seg):  # wait for the state: the "rank" maps it
            assert time.monotonic() < deadline, "the stand-in rank did not map the segment"
            time.sleep(0.02)
        spare = Spare(lambda: True, pids=lambda: [rank.pid])
        spare.recycle([seg])  # lent; nothing lent earlier can come free, so a fresh spare is made
        spare.settle(30)
        fresh = spare.take(8 << 20)
        assert fresh is not None and fresh is not seg
        assert spare.take(8 << 20) is None  # seg is still mapped by the rank
        rank.stdin.close()
        rank.wait(30)
        assert spare.take(8 << 20) is seg  # let go: reused, populated as it was
        assert seg.view is not None and seg.fd >= 0
    finally:
        if rank.poll() is None:
            rank.kill()
    fresh.close()
    seg.close()
    spare.close()
