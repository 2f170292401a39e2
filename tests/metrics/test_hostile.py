"""The engines' metrics socket under fire: a real collector of the real session cluster.

Hypothesis sends 500 bad messages over a real ZMQ PUSH socket to the
collector's endpoint: random frames, the wrong number of frames, messages
signed with another key, signed messages with a wrong field, payloads that
are not JSON (NaN, nesting too deep, numbers too long), frames of a few MB,
and replays of genuine samples. Every one is refused, the flood is logged in
a line or two, and the ranks' own samples keep arriving.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time

import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lepton_nb.metrics import sampler, wire
from tests.support.wait import wait_for

pytestmark = pytest.mark.slow

LOGGER = "lepton_nb.metrics.collector"
EXAMPLES = 500

# -- values of the wrong type for each field of a sample ------------------------
TEXT = st.text(max_size=12)
LISTS = st.lists(st.integers(), max_size=3)
DICTS = st.dictionaries(TEXT, st.integers(), max_size=2)
FLOATS = st.floats(allow_nan=False, allow_infinity=False)  # 2.0 is a JSON float, not an int
NOT_NUMBER = st.one_of(TEXT, st.booleans(), st.none(), LISTS, DICTS)
NOT_INT = st.one_of(NOT_NUMBER, FLOATS)
NOT_COUNT = st.one_of(NOT_INT, st.integers(max_value=-1))
NOT_TEXT = st.one_of(st.integers(), FLOATS, st.booleans(), st.none(), LISTS, DICTS)
NOT_DICT = st.one_of(TEXT, st.integers(), LISTS)
WRONG = {
    "type": st.one_of(TEXT.filter(lambda t: t != "sample"), NOT_TEXT),
    "cluster": st.one_of(TEXT, NOT_TEXT),  # never this cluster's id (32 hex digits)
    "version": st.one_of(st.integers().filter(lambda v: v != wire.VERSION), NOT_INT),
    "rank": NOT_COUNT,
    "pid": st.one_of(NOT_INT, st.integers(max_value=0)),
    "sender": st.one_of(st.just(""), st.text(min_size=65, max_size=80), NOT_TEXT),
    "seq": NOT_COUNT,
    "time": NOT_NUMBER,
    "busy": st.one_of(st.integers(), TEXT, st.none(), LISTS),
    "busy_since": NOT_NUMBER,
    "rss": NOT_COUNT,
    "cpu_percent": NOT_NUMBER,
    "memory_total": NOT_COUNT,
    "torch": st.one_of(
        NOT_DICT, st.fixed_dictionaries({"allocated": NOT_COUNT, "reserved": st.integers(0)})
    ),
    "nvml": st.one_of(
        NOT_DICT,
        st.fixed_dictionaries({"memory_total": st.integers(0)}),  # no memory_used
        st.fixed_dictionaries({"memory_used": NOT_COUNT}),
        st.fixed_dictionaries({"pcie": st.fixed_dictionaries({"tx_bytes_per_s": NOT_NUMBER})}),
    ),
    "links": st.one_of(
        TEXT,
        DICTS,
        st.lists(st.lists(st.integers(0, 9), max_size=3), min_size=1, max_size=3),
        st.lists(st.tuples(NOT_INT, st.just(1), st.just(0), st.just(0.0)), min_size=1),
    ),
}
#: Signed payloads that are not a JSON object, or not JSON at all.
NOT_JSON = st.one_of(
    st.binary(max_size=200),
    st.sampled_from(
        [
            b'{"type": "sample", "rss": NaN}',
            b'{"type": "sample", "time": Infinity}',
            b'{"type": "sample", "time": 1e400}',
            b'{"type": "sample", "rank": ' + b"9" * 5000 + b"}",
            b"[" * 5000 + b"]" * 5000,
            b'{"type": ' * 3000,
            b"\xff\xfe\x00{}",
            b"[1, 2]",
            b'"sample"',
            b"null",
        ]
    ),
)
#: How often each kind comes up (a few MB frames: rarely, they are costly).
KINDS = ["malformed"] * 5 + ["replay"] * 3 + ["wrong key"] * 3 + ["junk"] * 3 + ["frames"] * 2
KINDS += ["oversized"]  # hypothesis favours the first ones a little


def _hmac(key: bytes, payload: bytes) -> list[bytes]:
    return [hmac.new(key, payload, hashlib.sha256).hexdigest().encode(), payload]


def _push(endpoint: str) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.PUSH)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDTIMEO, 10_000)  # a send that waits longer fails the test
    sock.setsockopt(zmq.RECONNECT_IVL, 10)  # the collector drops a connection that sent MBs
    sock.connect(endpoint)
    return sock


def test_a_flood_of_bad_and_replayed_messages(cluster, caplog):
    collector = cluster.collector
    key, cid = collector.key, collector.cluster_id
    pid0 = cluster.placement[0]["pid"]

    # genuine samples of rank 0, as a sampler makes them: the newest goes first, so every
    # one of them sent again is a replay (or older than what that sender already sent)
    maker = sampler.Sampler(collector.endpoint, key, cid, 0, None, 1.0, sampler.Activity())
    genuine = [dict(maker.read(), pid=pid0, links=[]) for _ in range(60)]
    replays = [wire.sign(key, s) for s in genuine]
    template = genuine[-1]

    # the collector logs a flood's first refusal once no line was logged for a while
    refused = collector.refused
    if refused.logged_at is not None:
        time.sleep(max(0.0, refused.every - (time.monotonic() - refused.logged_at)))
    caplog.set_level(logging.WARNING, logger=LOGGER)
    before_refused, before_received = collector.rejected, collector.received

    main, big = _push(collector.endpoint), _push(collector.endpoint)
    sent = {kind: 0 for kind in KINDS}
    try:
        main.send_multipart(replays[-1])  # once: the genuine one, kept
        wait_for(lambda: collector.received > before_received, 10, "the genuine sample")

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        @given(kind=st.sampled_from(KINDS), data=st.data())
        def flood(kind, data):
            draw = data.draw
            if kind == "junk":
                frames = draw(st.lists(st.binary(max_size=300), min_size=1, max_size=4))
            elif kind == "frames":
                good = wire.sign(key, dict(template, seq=draw(st.integers(10**6, 10**9))))
                frames = draw(
                    st.sampled_from(
                        [good[:1], good[1:], good + [b""], good + good, [b"x"] * 2000 + good]
                    )
                )
            elif kind == "wrong key":
                other = draw(st.binary(min_size=1, max_size=64).filter(lambda k: k != key))
                frames = wire.sign(other, dict(template, seq=draw(st.integers(10**6, 10**9))))
            elif kind == "malformed":
                sample = dict(template, sender="fuzz", seq=draw(st.integers(0, 10**9)))
                how = draw(st.sampled_from(["field", "missing", "payload"]))
                if how == "field":
                    name = draw(st.sampled_from(sorted(WRONG)))
                    sample[name] = draw(WRONG[name])
                    if sample[name] == cid:  # a random name that happens to be this cluster's
                        sample[name] += "-not"
                    frames = wire.sign(key, sample)
                elif how == "missing":
                    del sample[draw(st.sampled_from(sorted(sample)))]
                    frames = wire.sign(key, sample)
                else:
                    frames = _hmac(key, draw(NOT_JSON))
            elif kind == "replay":
                frames = draw(st.sampled_from(replays))
            else:  # a few MB: ZMQ drops it, and the connection, before the collector reads it
                n = draw(st.integers(2 << 20, 4 << 20))
                payload = json.dumps({"type": "sample", "pad": "x" * n}).encode()
                frames = draw(st.sampled_from([[b"x" * n], _hmac(key, payload)]))
                big.send_multipart(frames)
                sent[kind] += 1
                return
            main.send_multipart(frames)
            sent[kind] += 1

        t0 = time.monotonic()
        flood()
        n_bad = sum(n for kind, n in sent.items() if kind != "oversized")
        wait_for(
            lambda: collector.rejected >= before_refused + n_bad, 30, f"{n_bad} refusals"
        )
        flooded = time.monotonic() - t0
        main.send_multipart(replays[-1])  # a last replay: every message before it was read
        wait_for(lambda: collector.rejected >= before_refused + n_bad + 1, 10, "the last one")
    finally:
        main.close(0)
        big.close(0)

    assert sum(sent.values()) >= EXAMPLES and sent["replay"] and sent["oversized"]
    # every bad message was refused, and no genuine sample of the ranks was
    assert collector.rejected == before_refused + n_bad + 1
    assert collector.is_alive(), "the collector thread died"
    # one line for the whole flood, and a count line at most every `every` s
    lines = [r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]
    assert 1 <= len(lines) <= 2 + flooded / refused.every, [r.getMessage() for r in lines]
    assert "dropped a malformed metrics message" in lines[0].getMessage()
    assert key.hex() not in caplog.text

    # the ranks' own samples still arrive, and the cluster still works
    t1 = time.time()
    wait_for(
        lambda: all(r.get("time", 0) > t1 for r in collector.snapshot()["ranks"]),
        10,
        "a fresh sample of every rank after the flood",
    )
    assert all(r["state"] in ("idle", "busy") for r in cluster.metrics())
    cluster.execute("x = 1", stream=False)
