"""The server follows real clusters: WebSocket stream, cluster list, Prometheus, and bad input."""

import asyncio
import json
import logging
import time

import pytest
import tornado.httpclient

pytestmark = pytest.mark.slow


@pytest.fixture
def own_kernels_only():
    return False  # the clusters here are started by the test process, not by a kernel


@pytest.fixture
def server_cluster(jp_environ, make_cluster):
    """A 2-rank cluster whose runtime file lands in the test server's runtime directory."""
    return make_cluster(n=2)


async def _next(ws, predicate, timeout=20.0, what="a message"):
    """Messages from ``ws`` until one satisfies ``predicate``; all of them are returned."""
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"no {what} within {timeout} s; saw {[m.get('type') for m in seen]}")
        raw = await asyncio.wait_for(ws.read_message(), left)
        assert raw is not None, "the WebSocket closed"
        seen.append(json.loads(raw))
        if predicate(seen[-1]):
            return seen


def _snap(cid):
    return lambda m: m.get("type") == "snapshot" and m["cluster"] == cid


async def test_stream_list_and_prometheus_follow_a_cluster(server_cluster, jp_fetch, jp_ws_fetch):
    c = server_cluster
    cid = c.cluster_id
    ws = await jp_ws_fetch("lepton", "api", "metrics")
    seen = await _next(
        ws,
        lambda m: _snap(cid)(m) and all(r["state"] == "idle" for r in m["ranks"]),
        what="an idle snapshot",
    )
    assert seen[0]["type"] == "hello"
    first = seen[-1]
    assert first["world_size"] == 2 and [r["rank"] for r in first["ranks"]] == [0, 1]
    assert [r["pid"] for r in first["ranks"]] == [p["pid"] for p in c.placement]

    # the stream moves while a distributed cell runs
    loop = asyncio.get_running_loop()
    code = "import numpy as np, time\n_m = np.ones(40_000_000)\ntime.sleep(2.5)\ndel _m"
    running = loop.run_in_executor(None, lambda: c.execute(code, stream=False))
    seen = await _next(ws, lambda m: running.done(), timeout=60, what="the end of the cell")
    await running
    during = [m for m in seen if _snap(cid)(m)]
    assert len(during) >= 3
    assert any(all(r["state"] == "busy" for r in m["ranks"]) for m in during)
    rss = [m["ranks"][0]["rss"] for m in during]
    assert max(rss) > first["ranks"][0]["rss"] + 200_000_000

    r = json.loads((await jp_fetch("lepton", "api", "clusters")).body)
    (listed,) = r["clusters"]
    assert listed["cluster"] == cid and listed["world_size"] == 2 and listed["kernel"] is None
    assert [x["host"] for x in listed["ranks"]] == [p["host"] for p in c.placement]

    await loop.run_in_executor(
        None,
        lambda: c.run(
            lambda: __import__("lepton_nb").links.count(__import__("lepton_nb").rank(), 0, 7_000)
        ),
    )
    await _next(
        ws,
        lambda m: _snap(cid)(m) and any(x["src"] == 1 for x in m["links"]),
        what="a snapshot with rank 1's link",
    )
    text = (await jp_fetch("lepton", "metrics")).body.decode()
    assert "lepton_clusters 1.0" in text
    for rank in (0, 1):
        assert f'lepton_rank_up{{cluster="{cid}",device="cpu",host="' in text
        assert f'lepton_rank_state{{cluster="{cid}",rank="{rank}",state="idle"}}' in text
        assert f'lepton_rank_rss_bytes{{cluster="{cid}",device="cpu"' in text
    assert f'lepton_link_bytes_total{{cluster="{cid}",dst="0",src="1"}} 7000.0' in text
    assert f'lepton_link_bytes_per_second{{cluster="{cid}",dst="0",src="1"}}' in text

    # the cluster stops: its file goes, the stream says so, the list empties
    await loop.run_in_executor(None, c.stop)
    await _next(ws, lambda m: m == {"type": "gone", "cluster": cid}, what="a gone message")
    r = json.loads((await jp_fetch("lepton", "api", "clusters")).body)
    assert r["clusters"] == []
    ws.close()


async def test_malformed_websocket_messages_are_logged_and_ignored(
    server_cluster, jp_fetch, jp_ws_fetch, jp_serverapp, caplog
):
    cid = server_cluster.cluster_id
    caplog.set_level(logging.WARNING)
    ws = await jp_ws_fetch("lepton", "api", "metrics")
    await _next(ws, _snap(cid), what="a snapshot")
    for bad in (
        "not json",
        "[1, 2]",
        json.dumps({"type": "explode"}),
        json.dumps({"type": "rate", "interval": "fast"}),
        json.dumps({"type": "rate", "interval": True}),
        json.dumps({"type": "rate", "interval": 0.001}),
        json.dumps({"type": "rate", "interval": 1e9}),
        b"\xff\xfe binary",
    ):
        await ws.write_message(bad, binary=isinstance(bad, bytes))
    await _next(ws, _snap(cid), what="a snapshot after the bad messages")
    # logged once for the lot, and counted
    assert caplog.text.count("ignored a malformed WebSocket message") == 1
    clusters = jp_serverapp.web_app.settings["lepton_clusters"]
    assert clusters.bad_requests.count == 8
    r = await jp_fetch("lepton", "api", "clusters")
    assert r.code == 200

    # a good rate: at most one snapshot of the cluster every 1.5 s
    await ws.write_message(json.dumps({"type": "rate", "interval": 1.5}))
    await _next(ws, _snap(cid))
    t0 = time.monotonic()
    await _next(ws, _snap(cid))
    assert time.monotonic() - t0 > 1.3
    ws.close()


async def test_forged_snapshots_are_dropped(server_cluster, jp_fetch, jp_serverapp, caplog):
    import zmq

    from lepton_nb.metrics import wire

    c = server_cluster
    clusters = jp_serverapp.web_app.settings["lepton_clusters"]
    deadline = time.monotonic() + 10
    while c.cluster_id not in clusters.snapshots and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    # a forger on the same socket: it cannot sign
    collector = c.collector
    pub = zmq.Context.instance().socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    clusters.subscription(c.cluster_id).connect(f"tcp://127.0.0.1:{port}")
    try:
        for _ in range(20):
            pub.send_multipart(
                wire.sign(b"not the key" * 3, {"type": "snapshot", "cluster": c.cluster_id})
            )
            pub.send_multipart([b"junk"])
            await asyncio.sleep(0.05)
            if clusters.rejected >= 2:
                break
    finally:
        pub.close(0)
    assert clusters.rejected >= 2
    assert "dropped a message from cluster" in caplog.text
    assert clusters.snapshots[c.cluster_id]["world_size"] == 2
    assert collector.key.hex() not in caplog.text


async def test_unusable_runtime_files_are_skipped(jp_runtime_dir, jp_fetch, caplog):
    caplog.set_level(logging.WARNING)
    (jp_runtime_dir / "lepton-cluster-bad.json").write_text("{broken")
    (jp_runtime_dir / "lepton-cluster-bad.json").chmod(0o600)
    dead = {"cluster": "dead", "endpoint": "tcp://127.0.0.1:9", "key": "00" * 32, "pid": 2**22 + 7}
    (jp_runtime_dir / "lepton-cluster-dead.json").write_text(json.dumps(dead))
    (jp_runtime_dir / "lepton-cluster-dead.json").chmod(0o600)
    await asyncio.sleep(0.6)
    r = json.loads((await jp_fetch("lepton", "api", "clusters")).body)
    assert r["clusters"] == []
    assert caplog.text.count("unreadable cluster file") == 1  # once, not at every scan
    with pytest.raises(tornado.httpclient.HTTPClientError):
        await jp_fetch("lepton", "nothing-here")
