"""The monitor widget through a comm: comm.create_comm is overridden to record what is sent.

The widget draws nothing in Python: it sends each snapshot the collector
publishes, once, as an anywidget custom message; the browser keeps the history
and draws it (tests/browser/ look at the drawing).
"""

import logging
import re
import threading
import time

import comm
import pytest
from comm.base_comm import BaseComm

import lepton_nb
from lepton_nb import ClusterError
from lepton_nb.monitor import BAD_INTERVAL, STATIC, Monitor
from tests.support.wait import wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.labextension,  # the widget's front end is the bundled renderer
]


class RecordingComm(BaseComm):
    """A comm whose messages to the front end are kept, as ipywidgets' own tests do."""

    def __init__(self, **kwargs):
        self.sent = []
        self.lock = threading.Lock()
        super().__init__(**kwargs)

    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        with self.lock:
            self.sent.append((msg_type, data or {}, time.monotonic()))

    def custom(self):
        """(time, content) of each custom message: the snapshots and the final ``gone``."""
        with self.lock:
            return [
                (t, d["content"])
                for kind, d, t in self.sent
                if kind == "comm_msg" and d.get("method") == "custom"
            ]

    def snapshots(self):
        return [(t, c) for t, c in self.custom() if c.get("type") == "snapshot"]


@pytest.fixture
def comms(monkeypatch):
    made = []

    def create_comm(**kwargs):
        made.append(RecordingComm(**kwargs))
        return made[-1]

    monkeypatch.setattr(comm, "create_comm", create_comm)
    return made




def test_it_sends_each_published_snapshot_once_with_the_bundled_front_end(cluster, comms):
    w = lepton_nb.monitor(cluster, interval=0.2)
    try:
        opened = comms[-1]
        assert opened.sent[0][0] == "comm_open"
        state = opened.sent[0][1]["state"]
        assert state["_esm"] == (STATIC / "monitor.js").read_text()
        assert state["_css"] == (STATIC / "monitor.css").read_text()
        assert state["cluster_id"] == cluster.cluster_id
        wait_for(lambda: len(opened.snapshots()) >= 5, what="5 snapshots")
        snaps = [c for _, c in opened.snapshots()]
        seqs = [s["seq"] for s in snaps]
        assert seqs == sorted(set(seqs)), "a snapshot sent twice or out of order"
        last = snaps[-1]
        assert last["cluster"] == cluster.cluster_id and last["world_size"] == 2
        assert [r["rank"] for r in last["ranks"]] == [0, 1]
        for row, p in zip(last["ranks"], cluster.placement):
            assert row["host"] == p["host"] and row["state"] in ("idle", "busy")
            assert row["series"]["memory"] > 0 and row["utilization_kind"] == "cpu"
        assert last["notebook"] == {"host": cluster.ranks.notebook_host}
        assert isinstance(last["events"], list)
    finally:
        w.close()
    assert not w.running
    assert opened.sent[-1][0] == "comm_close"


def test_it_moves_while_a_cell_runs_and_tells_the_cell(cluster, comms):
    w = Monitor(cluster, interval=0.1)
    try:
        wait_for(lambda: comms[-1].snapshots(), what="a first snapshot")
        started_at = time.time()
        t0 = time.monotonic()
        cluster.execute(
            "import numpy as np, time\n_m = np.ones(40_000_000)\ntime.sleep(2)\ndel _m",
            stream=False,
        )
        t1 = time.monotonic()
        during = [c for t, c in comms[-1].snapshots() if t0 < t < t1]
        assert len(during) >= 3  # snapshots go out while the notebook waits on the cell
        first = [c for t, c in comms[-1].snapshots() if t < t0][-1]["ranks"][0]["series"]["memory"]
        assert max(s["ranks"][0]["series"]["memory"] for s in during) > first + 200_000_000
        assert any(r["state"] == "busy" for s in during for r in s["ranks"])
        def ours():  # the events of this cell (the session's cluster ran others before)
            events = {e["id"]: e for _, s in comms[-1].snapshots() for e in s["events"]}
            return [e for _, e in sorted(events.items()) if e["time"] >= started_at]

        wait_for(lambda: [e for e in ours() if e["kind"] == "cell_ended"], what="the cell's end")
        events = ours()
        assert [e["kind"] for e in events] == ["cell_started", "cell_ended"]
        assert all("import numpy as np, time" in e["text"] for e in events)
    finally:
        w.close()


def test_closing_from_the_front_end_stops_it(cluster, comms):
    w = Monitor(cluster, interval=0.2)
    comms[-1].handle_close({"content": {"data": {}}})
    wait_for(lambda: not w.running, 5, "the thread to stop")
    w.close()


def test_it_says_gone_when_the_cluster_stops(make_cluster, comms):
    c = make_cluster(n=1)
    w = Monitor(c, interval=0.2)
    cid = c.cluster_id
    c.stop()
    assert w.wait(5) and not w.running
    assert comms[-1].custom()[-1][1] == {"type": "gone", "cluster": cid}
    w.close()


def test_malformed_comm_messages_are_logged_and_ignored(cluster, comms, caplog):
    w = Monitor(cluster, interval=0.2)
    c = comms[-1]
    caplog.set_level(logging.WARNING, logger="lepton_nb.monitor")
    try:
        for bad in (
            {},
            {"content": {}},
            {"content": {"data": "not a dict"}},
            {"content": {"data": {"method": "explode"}}},
            {"content": {"data": {"method": "update", "state": {"interval": -1}}}},
            {"content": {"data": {"method": "update", "state": "nonsense"}}},
            {"content": {"data": {"method": "update", "state": {"no_such_trait": 5}}}},
        ):
            c.handle_msg(bad)
        assert caplog.text.count("ignored a malformed comm message") == 7
        assert w.interval == 0.2
        n = len(c.snapshots())
        wait_for(lambda: len(c.snapshots()) > n, 5, "a snapshot after the bad messages")
        assert w.running
        n = len(c.sent)
        c.handle_msg({"content": {"data": {"method": "request_state"}}, "buffers": []})
        full = [d["state"] for kind, d, _ in c.sent[n:] if kind == "comm_msg" and "state" in d]
        assert any(s.get("_model_name") == "AnyModel" and "_esm" in s for s in full)
    finally:
        w.close()


def test_bad_interval_and_no_cluster(cluster, comms):
    with pytest.raises(ClusterError, match=re.escape(BAD_INTERVAL.format(min=0.1, value=0.01))):
        Monitor(cluster, interval=0.01)
    with pytest.raises(ClusterError, match="No cluster running"):
        Monitor(lepton_nb.Cluster())


def test_metrics_history_is_the_series_of_the_published_snapshots(cluster, comms):
    w = Monitor(cluster, interval=0.1)
    try:
        wait_for(lambda: len(comms[-1].snapshots()) >= 4, what="4 snapshots")
        sent = [c for _, c in comms[-1].snapshots()]
        history = cluster.metrics_history(seconds=300)
        assert sorted(history) == [0, 1]
        for rank, series in history.items():
            assert set(series) == {"time", "memory", "utilization", "sent"}
            assert len({len(v) for v in series.values()}) == 1  # one point per snapshot
            points = dict(zip(series["time"], series["memory"]))
            # every snapshot the widget sent is a point of the history, with the same value
            for snap in sent:
                assert points[snap["time"]] == snap["ranks"][rank]["series"]["memory"]
        short = cluster.metrics_history(seconds=0.3)
        assert 1 <= len(short[0]["time"]) < len(history[0]["time"])
    finally:
        w.close()
    for bad in (0, -1, 301, "5", True, None):
        with pytest.raises(ValueError, match="seconds must be"):
            cluster.metrics_history(seconds=bad)
