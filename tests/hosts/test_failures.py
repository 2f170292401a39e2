"""A host that stops answering mid-cell is noticed within seconds, not at the group's timeout."""

from __future__ import annotations

import threading
import time

import pytest

import lepton_nb

from .conftest import options, wait_until_empty

#: times how soon the peer is stopped
pytestmark = [pytest.mark.slow, pytest.mark.alone]

CELL = """
import time, torch, torch.distributed as dist
if rank == 1:
    time.sleep(300)  # its host goes away meanwhile
t = torch.ones(1)
try:
    dist.all_reduce(t)  # rank 0 waits here on rank 1
except BaseException:
    open({stamp!r}, "w").write(repr(time.time()))
    raise
"""


#: Seconds node2 stays away: the cell's error comes once the dead rank is restarted on it.
DOWN_S = 12.0


def test_a_rank_whose_host_stops_answering_stops_its_peer_within_10_s(rig, tmp_path):
    import psutil

    c = lepton_nb.Cluster(**options("ssh", rig))
    c.start()
    stamp = tmp_path / "rank0-stopped"  # the nodes share this file system
    down_at: list[float] = []
    try:
        assert [p["host"] for p in c.placement] == ["node1", "node2"]
        rank0 = psutil.Process(c.placement[0]["pid"])  # node1 shares this pid namespace
        gone_at: list[float] = []

        def cut():
            time.sleep(2.0)  # both ranks are in the cell by then
            with rig.link_down("node2"):
                down_at.append(time.time())
                deadline = time.monotonic() + DOWN_S
                while time.monotonic() < deadline:  # note when rank 0's engine goes, if it does
                    if not gone_at and not rank0.is_running():
                        gone_at.append(time.time())
                    time.sleep(0.05)

        cutter = threading.Thread(target=cut, daemon=True)
        cutter.start()
        try:
            with pytest.raises((lepton_nb.RemoteError, lepton_nb.ClusterError)) as err:
                c.execute(CELL.format(stamp=str(stamp)), timeout=120)
        finally:
            cutter.join(DOWN_S + 30)
        assert down_at, "the link never went down"
        # rank 0 failed or was interrupted (it wrote the stamp), or was restarted (it is gone)
        stopped = float(stamp.read_text()) if stamp.exists() else (gone_at or [float("inf")])[0]
        stopped -= down_at[0]
        print(f"rank 0 stopped {stopped:.1f} s after node2's link went down")
        assert stopped < 10.0, f"rank 0 stopped {stopped:.1f} s after node2 went away"
        assert "rank 1" in str(err.value) and "node2" in str(err.value), str(err.value)
        c.restart()  # node2 answers again
        assert c.execute("w = world_size", gather=["w"]) == {"w": [2, 2]}
    finally:
        c.stop()
    assert wait_until_empty(rig) == {}
