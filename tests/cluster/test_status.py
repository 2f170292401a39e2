import time

import pytest

from lepton_nb.cluster.status import COLUMNS, StatusTable
from lepton_nb.units import size


def test_status_has_a_row_per_rank_with_every_column(cluster):
    table = cluster.status()
    assert isinstance(table, StatusTable)
    rows = table.rows
    assert [r["rank"] for r in rows] == [0, 1]
    for row, p in zip(rows, cluster.placement):
        assert set(COLUMNS) <= set(row)
        assert row["pid"] == p["pid"] and row["engine"] == p["engine_id"]
        assert row["device"] == "cpu" and row["state"] == "idle"
        assert 0 < row["memory_used"] < row["memory_total"]
        assert row["memory"] == f"{size(row['memory_used'])} / {size(row['memory_total'])}"
    text = repr(table)
    assert text.splitlines()[1].split() == list(COLUMNS)
    assert "<table>" in table._repr_html_() and "<th>memory</th>" in table._repr_html_()


@pytest.mark.alone  # times the answer
def test_status_shows_a_busy_rank_without_waiting_for_it(cluster):
    eid = cluster.placement[1]["engine_id"]
    ar = cluster.client[eid].execute("import time; time.sleep(1.5)", block=False)
    time.sleep(0.3)
    start = time.monotonic()
    states = [r["state"] for r in cluster.status().rows]
    assert time.monotonic() - start < 1.0
    assert states == ["idle", "busy"]
    ar.get(timeout=10)


def test_status_and_the_snapshot_agree(cluster):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(r["state"] != "idle" for r in cluster.metrics()):
        time.sleep(0.05)  # an earlier cell's last sample may still say busy
    snap = [r["state"] for r in cluster.collector.snapshot()["ranks"]]
    assert [r["state"] for r in cluster.status().rows] == snap == ["idle", "idle"]
