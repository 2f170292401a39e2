"""The monitor widget through a comm: comm.create_comm is overridden to record what is sent."""

import logging
import re
import threading
import time

import comm
import pytest
from comm.base_comm import BaseComm

import lepton_nb
from lepton_nb import ClusterError
from lepton_nb.monitor import BAD_INTERVAL, Monitor, render

pytestmark = pytest.mark.slow


class RecordingComm(BaseComm):
    """A comm whose messages to the front end are kept, as ipywidgets' own tests do."""

    def __init__(self, **kwargs):
        self.sent = []
        self.lock = threading.Lock()
        super().__init__(**kwargs)

    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        with self.lock:
            self.sent.append((msg_type, data or {}, time.monotonic()))

    def updates(self):
        with self.lock:
            return [
                (t, d["state"]["value"])
                for kind, d, t in self.sent
                if kind == "comm_msg" and d.get("method") == "update" and "value" in d["state"]
            ]


@pytest.fixture
def comms(monkeypatch):
    made = []

    def create_comm(**kwargs):
        made.append(RecordingComm(**kwargs))
        return made[-1]

    monkeypatch.setattr(comm, "create_comm", create_comm)
    return made


def _memory(value, rank):
    row = re.search(rf'data-rank="{rank}".*?data-bytes="(\d+)"', value, re.S)
    return int(row.group(1))


def test_it_shows_placement_memory_state_and_updates_twice_a_second(cluster, comms):
    w = lepton_nb.monitor(cluster, interval=0.5)
    try:
        opened = comms[-1]
        assert opened.sent[0][0] == "comm_open"
        assert w.value.count('class="lepton-rank"') == 2
        for p in cluster.placement:
            assert p["host"] in w.value
        time.sleep(3.2)
        assert len(opened.updates()) >= 3  # at least 1 Hz
        assert re.search(r"lepton-state[^>]*>(idle|busy)<", w.value)
        assert "lepton-links" in w.value
    finally:
        w.close()
    assert not w.running
    assert opened.sent[-1][0] == "comm_close"


def test_it_moves_while_a_cell_runs(cluster, comms):
    w = Monitor(cluster, interval=0.25)
    try:
        before = _memory(w.value, 0)
        t0 = time.monotonic()
        cluster.execute(
            "import numpy as np, time\n_m = np.ones(40_000_000)\ntime.sleep(2)\ndel _m",
            stream=False,
        )
        t1 = time.monotonic()
        during = [v for t, v in comms[-1].updates() if t0 < t < t1]
        assert len(during) >= 3
        assert max(_memory(v, 0) for v in during) > before + 200_000_000
        assert any(">busy<" in v for v in during)
    finally:
        w.close()


def test_closing_from_the_front_end_stops_it(cluster, comms):
    w = Monitor(cluster, interval=0.2)
    comms[-1].handle_close({"content": {"data": {}}})
    deadline = time.monotonic() + 5
    while w.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not w.running
    w.close()


def test_it_stops_when_the_cluster_stops(make_cluster, comms):
    c = make_cluster(n=1)
    w = Monitor(c, interval=0.2)
    c.stop()
    assert w.wait(5) and not w.running
    assert "<b>stopped</b>" in w.value
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
            {"content": {"data": {"method": "update", "state": {"value": 5}}}},
        ):
            c.handle_msg(bad)
        assert caplog.text.count("ignored a malformed comm message") == 7
        assert w.interval == 0.2
        n = len(c.updates())
        time.sleep(1.0)
        assert w.running and len(c.updates()) > n  # still drawing
        c.handle_msg({"content": {"data": {"method": "request_state"}}, "buffers": []})
        full = [d["state"] for kind, d, _ in c.sent[-3:] if kind == "comm_msg"]
        assert any(s.get("_model_name") == "HTMLModel" and "value" in s for s in full)
    finally:
        w.close()


def test_bad_interval_and_no_cluster(cluster, comms):
    with pytest.raises(ClusterError, match=re.escape(BAD_INTERVAL.format(min=0.1, value=0.01))):
        Monitor(cluster, interval=0.01)
    with pytest.raises(ClusterError, match="No cluster running"):
        Monitor(lepton_nb.Cluster())


def test_render():
    assert "no cluster" in render(None)
    snap = {
        "cluster": "c<1>",
        "time": 0.0,
        "world_size": 2,
        "backend": "gloo",
        "ranks": [
            {
                "rank": 0,
                "host": "h",
                "device": "cuda:0",
                "gpu": 3,
                "state": "busy",
                "memory": {"kind": "gpu", "used": 2e9, "total": 8e9},
                "cpu_percent": 50.0,
            },
            {"rank": 1, "host": "h", "device": "cpu", "gpu": None, "state": "dead", "memory": None},
        ],
        "links": [
            {"src": -1, "dst": 1, "bytes": 5e6, "rate": 1.5e6},
            {"src": 0, "dst": 1, "bytes": 1e9, "rate": 3e8},
        ],
    }
    out = render(snap, stopped=True)
    assert "c&lt;1&gt;" in out and "<b>stopped</b>" in out
    assert "cuda:0 (GPU 3)" in out and "2.0 GB / 8.0 GB" in out and "width:25.0%" in out
    assert ">dead<" in out and "n/a" in out
    assert "<th>notebook</th>" in out and "300.0 MB/s" in out and "1.5 MB/s" in out
