"""History: each rank's series over the last minutes, one point per snapshot."""

import math

from lepton_nb.metrics.history import KEEP_S, History


def _snap(t, *memories):
    return {
        "time": t,
        "ranks": [
            {"rank": r, "series": {"memory": m, "utilization": 10.0 * r, "sent": None}}
            for r, m in enumerate(memories)
        ],
    }


def test_read_gives_columns_per_rank():
    h = History(0.5)
    for i in range(5):
        h.add(_snap(100.0 + i, 1e6 * i, 7.0))
    got = h.read()
    assert sorted(got) == [0, 1]
    assert got[0] == {
        "time": [100.0, 101.0, 102.0, 103.0, 104.0],
        "memory": [0.0, 1e6, 2e6, 3e6, 4e6],
        "utilization": [0.0] * 5,
        "sent": [None] * 5,
    }
    assert h.read(seconds=1.5)[1]["time"] == [103.0, 104.0]


def test_it_keeps_five_minutes_of_points():
    h = History(0.5)
    assert h.points == math.ceil(KEEP_S / 0.5) + 1
    for i in range(2 * h.points):
        h.add(_snap(0.5 * i, 1.0))  # one every 0.5 s
    times = h.read()[0]["time"]
    assert len(times) == h.points and times[-1] == 0.5 * (2 * h.points - 1)


def test_empty_and_late_ranks():
    h = History(1.0)
    assert h.read() == {}
    h.add(_snap(1.0, 5.0))
    h.add(_snap(2.0, 5.0, 6.0))  # a rank that appears later has its own times
    got = h.read()
    assert got[0]["time"] == [1.0, 2.0] and got[1]["time"] == [2.0]
