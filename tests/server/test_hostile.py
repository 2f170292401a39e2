"""The server's channels under fire: runtime files, the REST routes and the WebSocket.

- a folder of 500 hypothesis-made runtime files (truncated, wrong types, huge,
  symlinks, loose modes, not UTF-8, FIFOs, folders): the registry never
  raises, follows none of them, and logs the lot in a line or two;
- 500 random requests to the routes of a real Jupyter server (paths, query
  strings, headers, methods, with and without a token): never a 5xx, never
  served without a token, and a good request still works;
- 500 random WebSocket messages (not JSON, too deep, too big, wrong types,
  wrong rates) and handshakes without a token: refused, logged once, and the
  stream of the session cluster's snapshots goes on;
- 500 forged, junk and replayed snapshots on the server's subscription to a
  cluster: refused, and the cluster's own snapshots still come in.

Hypothesis runs in a worker thread and drives the pytest-jupyter clients on
the server's event loop, so every request is a real one to the real server.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import time

import pytest
import tornado.httpclient
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lepton_nb.metrics import runtime, wire
from lepton_nb.server.handlers import MAX_INTERVAL, MAX_MESSAGE_BYTES, MIN_INTERVAL
from lepton_nb.server.registry import Clusters

pytestmark = pytest.mark.slow

EXAMPLES = 500
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
ROUTES = ["lepton/api/clusters", "lepton/metrics"]
NO_TOKEN = {"Authorization": ""}

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)  # encodable
NAMES = st.from_regex(r"\AX-[A-Za-z0-9-]{1,20}\Z")
VALUES = st.from_regex(r"\A[ -~]{0,60}\Z").map(str.strip)  # printable ASCII, no CR/LF
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


@pytest.fixture
def own_kernels_only():
    return False  # the session cluster is the test process's, not a kernel's


def _on_loop(loop, make):
    """Await ``make()`` on the server's loop, from hypothesis's thread; its result."""

    async def run():
        return await make()

    return asyncio.run_coroutine_threadsafe(run(), loop).result(30)


async def _followed(clusters, cluster, folder):
    """Have the server follow the session cluster (a copy of its runtime file in ``folder``)."""
    info = runtime.load(cluster.collector.runtime_file)
    info.pop("path")
    runtime.write(info, str(folder))
    deadline = time.monotonic() + 10
    while cluster.cluster_id not in clusters.snapshots:
        assert time.monotonic() < deadline, "the server did not follow the session cluster"
        await asyncio.sleep(0.05)
    return cluster.cluster_id


def _lines(caplog, text):
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


# -- runtime files -------------------------------------------------------------------
GOOD_FILE = {
    "cluster": "c",
    "endpoint": "tcp://127.0.0.1:9",
    "key": "ab" * 32,
    "pid": os.getpid(),
    "kernel": None,
    "started": 1.0,
}
NOT_TEXT = st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), st.lists(TEXT))
WRONG_FIELD = {
    "cluster": st.one_of(NOT_TEXT, st.none(), st.just(""), st.just("c" * 2000)),
    "endpoint": st.one_of(NOT_TEXT, st.none(), TEXT.filter(lambda t: not t.startswith("tcp://"))),
    "key": st.one_of(
        NOT_TEXT, st.none(), st.just("zz" * 32), st.binary(max_size=15).map(bytes.hex)
    ),
    "pid": st.one_of(
        st.integers(max_value=0), st.integers(min_value=2**31), st.just(float(os.getpid())),
        st.just(str(os.getpid())), st.booleans(), st.none(),
    ),  # fmt: skip
    "kernel": NOT_TEXT,
    "started": st.one_of(TEXT, st.booleans(), st.lists(st.integers())),
}
FILE_KINDS = ["wrong type", "truncated", "missing", "mode", "symlink", "not utf8", "not json"]
FILE_KINDS += ["not an object", "huge", "deep", "fifo", "folder"]


def _write(path, data: bytes, mode: int = 0o600) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


async def test_a_folder_of_bad_runtime_files(tmp_path, caplog):
    folder = tmp_path / "runtime"
    folder.mkdir(mode=0o700)
    good_elsewhere = tmp_path / "good.json"  # a fine file, reached through a symlink only
    _write(good_elsewhere, json.dumps(GOOD_FILE).encode())
    log = logging.getLogger("tests.server.hostile.files")
    caplog.set_level(logging.WARNING, logger=log.name)
    clusters = Clusters(log, None, folder=str(folder))
    names = itertools.count()
    made = []

    @FUZZ
    @given(kind=st.sampled_from(FILE_KINDS), data=st.data())
    def files(kind, data):
        draw = data.draw
        path = folder / f"{runtime.PREFIX}{next(names)}.json"
        info = dict(GOOD_FILE)  # fine but for what the kind spoils
        text = json.dumps(info).encode()
        if kind == "wrong type":
            name = draw(st.sampled_from(sorted(WRONG_FIELD)))
            _write(path, json.dumps(dict(info, **{name: draw(WRONG_FIELD[name])})).encode())
        elif kind == "truncated":
            _write(path, text[: draw(st.integers(0, len(text) - 1))])
        elif kind == "missing":
            del info[draw(st.sampled_from(sorted(runtime.FIELDS)))]
            _write(path, json.dumps(info).encode())
        elif kind == "mode":  # readable by the group or others: never read
            _write(path, text, 0o600 | draw(st.integers(1, 0o77)))
        elif kind == "symlink":
            target = draw(st.sampled_from([good_elsewhere, "/dev/zero", tmp_path, "/nowhere"]))
            path.symlink_to(target)
        elif kind == "not utf8":
            _write(path, b'{"cluster": "\xff' + draw(st.binary(max_size=50)) + b'"}')
        elif kind == "not json":
            _write(path, draw(st.binary(max_size=200)))
        elif kind == "not an object":
            _write(path, json.dumps(draw(st.lists(JSON, max_size=3) | TEXT)).encode())
        elif kind == "huge":
            pad = "x" * draw(st.integers(runtime.MAX_FILE_BYTES, 1 << 20))
            _write(path, json.dumps(dict(info, pad=pad)).encode())
        elif kind == "deep":
            n = draw(st.integers(2000, 20000))
            _write(path, b'{"cluster": ' + b"[" * n + b"]" * n + b"}")
        elif kind == "fifo":
            os.mkfifo(path, 0o600)
        else:
            path.mkdir(mode=0o700)
        made.append(kind)
        clusters.scan()  # never raises, never blocks
        assert clusters.info == {}, f"followed a bad file ({kind})"

    try:
        t0 = time.monotonic()
        files()
        took = time.monotonic() - t0
        assert len(made) >= EXAMPLES and {"symlink", "fifo", "huge", "mode"} <= set(made)
        assert clusters.bad_files.count == len(made)  # each refused once, not at every scan
        clusters.scan()
        assert clusters.bad_files.count == len(made)
        lines = _lines(caplog, "lepton: ignoring cluster files")
        assert 1 <= len(lines) <= 2 + took / clusters.bad_files.every, lines
        # a good file among them is still followed
        _write(folder / f"{runtime.PREFIX}good.json", json.dumps(GOOD_FILE).encode())
        clusters.scan()
        assert list(clusters.info) == ["c"]
    finally:
        clusters.stop()


# -- REST ----------------------------------------------------------------------------
HEADERS = st.dictionaries(
    st.one_of(NAMES, st.sampled_from(["Accept", "Accept-Language", "User-Agent", "Cookie"])),
    VALUES,
    max_size=4,
)
PATHS = st.one_of(
    st.sampled_from(ROUTES),
    st.builds(lambda r, rest: f"{r}/{rest}", st.sampled_from(ROUTES + ["lepton", "lepton/api"]), TEXT),
    st.sampled_from(["lepton/api/metrics", "lepton/api/clusters/", "lepton/api/clusters/../x"]),
)


async def test_rest_routes_under_random_requests(
    cluster, jp_serverapp, jp_fetch, jp_runtime_dir, caplog
):
    caplog.set_level(logging.WARNING)
    clusters = jp_serverapp.web_app.settings["lepton_clusters"]
    cid = await _followed(clusters, cluster, jp_runtime_dir)
    loop = asyncio.get_running_loop()
    codes = []

    def fetch(path, **kw):
        async def go():
            try:
                r = await jp_fetch(path, follow_redirects=False, **kw)
            except tornado.httpclient.HTTPClientError as e:
                return e.code, e.response.body if e.response else b""
            return r.code, r.body

        return _on_loop(loop, go)

    @FUZZ
    @given(
        path=PATHS,
        method=st.sampled_from(["GET"] * 4 + ["POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
        params=st.dictionaries(TEXT.filter(lambda k: k != "token"), TEXT, max_size=3),
        token_param=st.none() | st.from_regex(r"\A[a-z0-9]{1,20}\Z"),  # a wrong ?token=
        headers=HEADERS,
        token=st.one_of(st.just("good"), st.just(""), st.sampled_from(["token nope", "Bearer x"])),
        body=st.binary(max_size=100),
    )
    def requests(path, method, params, token_param, headers, token, body):
        if token != "good":
            headers = dict(headers, Authorization=token)
        if token_param is not None:
            params = dict(params, token=token_param)  # jupyter_server reads it before the header
        with_body = method in ("POST", "PUT", "PATCH")
        code, answer = fetch(
            path, method=method, params=params, headers=headers, body=body if with_body else None
        )
        codes.append(code)
        assert code < 500, f"{method} {path} answered {code}"
        if token != "good" or token_param is not None:  # no credentials: nothing of ours
            if method == "OPTIONS" and code < 300:  # jupyter_server answers CORS preflights
                assert answer == b"", f"OPTIONS {path} said {answer[:100]!r} without a token"
            else:  # a redirect (a trailing /) or a refusal
                assert code >= 300, f"{method} {path} served without a token ({code})"
            assert b'"clusters"' not in answer and b"lepton_" not in answer, answer[:100]
        if path in ROUTES and method == "GET":
            want = 200 if token == "good" and token_param is None else 403
            assert code == want, f"GET {path}: {code}"

    await loop.run_in_executor(None, requests)
    assert len(codes) >= EXAMPLES and {200, 403, 404} <= set(codes)
    # the server is up and serves the cluster
    listed = json.loads((await jp_fetch("lepton", "api", "clusters")).body)["clusters"]
    assert [c["cluster"] for c in listed] == [cid] and listed[0]["world_size"] == 2
    assert f'cluster="{cid}"' in (await jp_fetch("lepton", "metrics")).body.decode()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# -- WebSocket -----------------------------------------------------------------------
def _valid_rate(message) -> bool:
    if not isinstance(message, dict) or message.get("type") != "rate":
        return False
    s = message.get("interval")
    return isinstance(s, (int, float)) and not isinstance(s, bool) and MIN_INTERVAL <= s <= MAX_INTERVAL


def _no_constant(name):
    raise ValueError(name)  # the server refuses NaN and Infinity anywhere in a message


RATES = st.one_of(
    st.floats(), st.integers(), st.booleans(), st.none(), TEXT, st.lists(st.integers(), max_size=2)
)
WS_KINDS = ["json", "rate", "text", "binary", "deep", "stranger", "good rate", "huge"]


async def _next_snapshot(ws, cid, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        raw = await asyncio.wait_for(ws.read_message(), deadline - time.monotonic())
        assert raw is not None, "the WebSocket closed"
        msg = json.loads(raw)
        if msg.get("type") == "snapshot" and msg["cluster"] == cid:
            return msg


async def test_websocket_under_random_messages(
    cluster, jp_serverapp, jp_ws_fetch, jp_fetch, jp_runtime_dir, caplog
):
    caplog.set_level(logging.WARNING)
    clusters = jp_serverapp.web_app.settings["lepton_clusters"]
    cid = await _followed(clusters, cluster, jp_runtime_dir)
    loop = asyncio.get_running_loop()

    async def connect():
        ws = await jp_ws_fetch("lepton", "api", "metrics")
        assert json.loads(await ws.read_message())["type"] == "hello"
        return ws

    conn = {"ws": await connect()}
    sent = {kind: 0 for kind in WS_KINDS}
    refused_before = clusters.bad_requests.count
    must_refuse = 0

    async def stranger(headers):
        try:
            ws = await jp_ws_fetch("lepton", "api", "metrics", headers=headers)
        except tornado.httpclient.HTTPClientError as e:
            return e.code
        ws.close()
        return 101

    async def too_big(message):
        ws = conn["ws"]
        await ws.write_message(message)
        while await asyncio.wait_for(ws.read_message(), 10) is not None:
            pass  # snapshots queued before the close
        assert ws.close_code == 1009, ws.close_code
        conn["ws"] = await connect()

    @FUZZ
    @given(kind=st.sampled_from(WS_KINDS), data=st.data())
    def messages(kind, data):
        nonlocal must_refuse
        draw = data.draw
        sent[kind] += 1
        if kind == "stranger":
            auth = draw(st.sampled_from(["", "token nope", "Bearer x", "token"]))
            headers = dict(draw(st.dictionaries(NAMES, VALUES, max_size=3)), Authorization=auth)
            assert _on_loop(loop, lambda: stranger(headers)) == 403
            return
        if kind == "huge":
            pad = draw(st.integers(MAX_MESSAGE_BYTES, 4 * MAX_MESSAGE_BYTES))
            _on_loop(loop, lambda: too_big(json.dumps({"type": "rate", "pad": "x" * pad})))
            return
        if kind == "json":
            message = json.dumps(draw(JSON))
        elif kind == "rate":
            message = json.dumps({"type": "rate", "interval": draw(RATES)})
        elif kind == "good rate":
            message = json.dumps(
                {"type": "rate", "interval": draw(st.floats(MIN_INTERVAL, MAX_INTERVAL))}
            )
        elif kind == "text":
            message = draw(TEXT)
        elif kind == "binary":
            message = draw(st.binary(max_size=300))
        else:  # nested deeper than Python's json can parse, within the size limit
            n = draw(st.integers(1100, MAX_MESSAGE_BYTES // 2 - 1))
            message = "[" * n + "]" * n
        try:
            parsed = json.loads(message, parse_constant=_no_constant)
        except (ValueError, RecursionError):
            parsed = None
        must_refuse += not _valid_rate(parsed)
        _on_loop(loop, lambda: conn["ws"].write_message(message, binary=isinstance(message, bytes)))

    t0 = time.monotonic()
    await loop.run_in_executor(None, messages)
    took = time.monotonic() - t0
    assert sum(sent.values()) >= EXAMPLES and sent["huge"] and sent["stranger"] and sent["deep"]

    # every bad message was refused and counted, and the lot logged in a line or two
    deadline = time.monotonic() + 10
    while clusters.bad_requests.count < refused_before + must_refuse:
        assert time.monotonic() < deadline, (clusters.bad_requests.count, must_refuse)
        await asyncio.sleep(0.05)
    assert clusters.bad_requests.count == refused_before + must_refuse
    lines = _lines(caplog, "ignored a malformed WebSocket message")
    assert 1 <= len(lines) <= 2 + took / clusters.bad_requests.every, lines
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

    # the stream goes on, at the rate asked for; a new client is greeted; REST answers
    ws = conn["ws"]
    await ws.write_message(json.dumps({"type": "rate", "interval": MIN_INTERVAL}))
    first = await _next_snapshot(ws, cid)
    assert (await _next_snapshot(ws, cid))["time"] > first["time"]
    ws.close()
    ws = await jp_ws_fetch("lepton", "api", "metrics")
    hello = json.loads(await ws.read_message())
    assert [c["cluster"] for c in hello["clusters"]] == [cid]
    ws.close()
    assert (await jp_fetch("lepton", "api", "clusters")).code == 200


# -- the snapshot stream -------------------------------------------------------------
async def test_forged_junk_and_replayed_snapshots(cluster, jp_serverapp, jp_runtime_dir, caplog):
    caplog.set_level(logging.WARNING)
    clusters = jp_serverapp.web_app.settings["lepton_clusters"]
    cid = await _followed(clusters, cluster, jp_runtime_dir)
    key = cluster.collector.key
    # genuine snapshots, as the server got them: each one sent again is a replay
    genuine = []
    while len(genuine) < 3:
        snap = clusters.snapshots[cid]
        if not genuine or snap["seq"] != genuine[-1]["seq"]:
            genuine.append(snap)
        await asyncio.sleep(0.05)
    replays = [wire.sign(key, snap) for snap in genuine]
    # a forger on the server's own subscription (as if it held the cluster's port)
    pub = zmq.Context.instance().socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    clusters.subscription(cid).connect(f"tcp://127.0.0.1:{port}")
    before = clusters.rejected
    try:
        while clusters.rejected == before:  # PUB drops what it sends before the SUB is in
            pub.send_multipart(replays[0])
            await asyncio.sleep(0.05)
        loop = asyncio.get_running_loop()
        before, sent = clusters.rejected, []

        @FUZZ
        @given(kind=st.sampled_from(["replay", "wrong key", "other", "junk"]), data=st.data())
        def forge(kind, data):
            draw = data.draw
            if kind == "replay":
                frames = draw(st.sampled_from(replays))
            elif kind == "wrong key":
                other = draw(st.binary(min_size=1, max_size=64))
                frames = wire.sign(other, dict(genuine[-1], seq=draw(st.integers(10**9))))
            elif kind == "other":  # signed, but not a new snapshot of this cluster
                spoil = draw(st.sampled_from(
                    [{"cluster": "another"}, {"type": "sample"}, {"seq": None}, {"seq": -1}]
                ))  # fmt: skip
                frames = wire.sign(key, dict(genuine[-1], **spoil))
            else:
                frames = draw(st.lists(st.binary(max_size=200), min_size=1, max_size=4))
            loop.call_soon_threadsafe(pub.send_multipart, frames)
            sent.append(kind)

        await loop.run_in_executor(None, forge)
        deadline = time.monotonic() + 10
        while clusters.rejected < before + len(sent):
            assert time.monotonic() < deadline, (clusters.rejected - before, len(sent))
            await asyncio.sleep(0.05)
    finally:
        pub.close(0)
    assert clusters.rejected == before + len(sent) and len(sent) >= EXAMPLES
    assert len(_lines(caplog, "dropped a message from cluster")) <= 3
    assert key.hex() not in caplog.text
    # the cluster's own snapshots still come in
    last = clusters.snapshots[cid]["seq"]
    deadline = time.monotonic() + 10
    while clusters.snapshots[cid]["seq"] <= last:
        assert time.monotonic() < deadline, "no new snapshot of the cluster after the flood"
        await asyncio.sleep(0.05)
