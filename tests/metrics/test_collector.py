"""The notebook's collector against real clusters: samples arrive while cells run."""

import logging
import os
import signal
import stat
import threading
import time

import numpy as np
import pytest
import zmq

from lepton_nb import Cluster, ClusterError
from lepton_nb.cluster import NO_CLUSTER
from lepton_nb.metrics import runtime, wire
from tests.support.wait import wait_for

pytestmark = pytest.mark.slow




def test_metrics_has_every_rank(cluster):
    rows = cluster.metrics()
    assert [r["rank"] for r in rows] == [0, 1]
    for r, p in zip(rows, cluster.placement):
        assert r["host"] == p["host"] and r["pid"] == p["pid"] and r["device"] == "cpu"
        assert r["state"] in ("idle", "busy")
        assert r["rss"] > 0 and r["memory"]["kind"] == "host"


def test_samples_arrive_while_a_cell_runs(cluster):
    seen = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            snap = cluster.collector.snapshot()
            seen.append([(r["state"], r.get("time"), r.get("rss") or 0) for r in snap["ranks"]])
            time.sleep(0.2)

    watcher = threading.Thread(target=watch)
    watcher.start()
    t0 = time.time()
    try:
        cluster.execute(
            "import numpy as np, time\n"
            "_blob = np.ones(40_000_000)\n"  # 320 MB
            "time.sleep(2.5)\n"
            "del _blob",
            stream=False,
        )
    finally:
        stop.set()
        watcher.join(5)
    t1 = time.time()
    during = [s for s in seen if all(t0 < (t or 0) < t1 for _, t, _ in s)]
    assert len({s[0][1] for s in during}) >= 3, "fewer than 3 samples of rank 0 during the cell"
    assert any(all(state == "busy" for state, _, _ in s) for s in during)
    assert max(s[0][2] for s in during) > min(s[0][2] for s in seen) + 200_000_000
    wait_for(lambda: all(r["state"] == "idle" for r in cluster.metrics()), what="idle ranks")


def test_link_bytes_and_rates_of_ranks_and_notebook(cluster):
    def links():
        snap = cluster.collector.snapshot()
        return {(x["src"], x["dst"]): x for x in snap["links"]}

    def counted(key):
        return links().get(key, {}).get("bytes", 0)

    before = {k: counted(k) for k in ((0, 1), (1, 0), (-1, 0))}  # earlier tests moved bytes too
    cluster.run(
        lambda: __import__("lepton_nb").links.count(
            __import__("lepton_nb").rank(), 1 - __import__("lepton_nb").rank(), 5_000_000
        )
    )
    cluster.push({"arr": np.random.default_rng(7).random(300_000)})  # 2.4 MB from the notebook
    want = {(0, 1): 5_000_000, (1, 0): 5_000_000, (-1, 0): 2_400_000}
    # wait for samples taken after the counts, not for rows that were already there
    wait_for(
        lambda: all(counted(k) >= before[k] + n for k, n in want.items()),
        what="the new link bytes in the snapshot",
    )
    got = links()
    assert got[(0, 1)]["bytes"] >= before[(0, 1)] + 5_000_000
    wait_for(lambda: links()[(0, 1)]["rate"] == 0.0, what="the rate to fall back to 0")


def test_runtime_file_and_published_snapshots(cluster):
    path = cluster.collector.runtime_file
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    info = runtime.read(path)
    assert info["cluster"] == cluster.cluster_id and info["pid"] == os.getpid()
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(info["endpoint"])
    try:
        assert sub.poll(10_000), "no snapshot published within 10 s"
        snap = wire.verify(bytes.fromhex(info["key"]), sub.recv_multipart())
    finally:
        sub.close(0)
    assert snap["type"] == "snapshot" and snap["world_size"] == 2 and snap["backend"] == "gloo"


def test_malformed_messages_are_logged_and_dropped(cluster, caplog):
    collector = cluster.collector
    push = zmq.Context.instance().socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 0)
    push.connect(collector.endpoint)
    before = collector.rejected
    caplog.set_level(logging.WARNING, logger="lepton_nb.metrics.collector")
    try:
        push.send_multipart([b"garbage"])
        push.send_multipart([b"0" * 64, b'{"type": "sample", "rank": 0}'])
        push.send_multipart(wire.sign(b"wrong key" * 4, {"type": "sample", "rank": 0}))
        push.send_multipart(
            wire.sign(
                collector.key, {"type": "sample", "rank": "zero", "cluster": collector.cluster_id}
            )
        )
        push.send_multipart(
            wire.sign(collector.key, {"type": "sample", "rank": 0, "cluster": "another"})
        )
        wait_for(lambda: collector.rejected >= before + 5, what="5 rejections")
    finally:
        push.close(0)
    assert "dropped a malformed metrics message" in caplog.text
    assert collector.is_alive()
    n = collector.received
    wait_for(lambda: collector.received > n, what="good samples after bad ones")
    assert cluster.metrics()[0]["state"] in ("idle", "busy")


def test_dead_restarting_and_back(make_cluster):
    c = make_cluster(n=2)
    c.metrics()
    old_pid = c.placement[1]["pid"]
    os.kill(old_pid, signal.SIGKILL)
    wait_for(lambda: c.collector.snapshot()["ranks"][1]["state"] == "dead", what="dead")
    states = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            states.append(c.collector.snapshot()["ranks"][1]["state"])
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        c.restart(1)
    finally:
        stop.set()
        watcher.join(5)
    assert "restarting" in states
    rows = c.metrics()
    assert rows[1]["pid"] != old_pid and rows[1]["state"] in ("idle", "busy")
    wait_for(lambda: c.collector.snapshot()["ranks"][1]["state"] == "idle", what="idle")
    path = c.collector.runtime_file
    c.stop()
    assert not os.path.exists(path)


def test_metrics_without_a_cluster():
    with pytest.raises(ClusterError, match="No cluster running"):
        Cluster().metrics()
    assert "%lepton_cluster start" in NO_CLUSTER
