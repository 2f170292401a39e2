import pytest

from lepton_nb.metrics import wire

KEY = b"k" * 32


def test_a_signed_message_verifies():
    frames = wire.sign(KEY, {"type": "sample", "rank": 1, "rss": 10})
    assert wire.verify(KEY, frames) == {"type": "sample", "rank": 1, "rss": 10}


@pytest.mark.parametrize(
    "frames, why",
    [
        ([b"only one frame"], "expected 2 frames"),
        ([b"a", b"b", b"c"], "expected 2 frames"),
        ([b"0" * 64, b'{"type": "sample"}'], "bad signature"),
    ],
)
def test_malformed_frames_are_refused(frames, why):
    with pytest.raises(wire.BadMessage, match=why):
        wire.verify(KEY, frames)


def test_another_key_is_refused():
    frames = wire.sign(b"x" * 32, {"type": "sample"})
    with pytest.raises(wire.BadMessage, match="bad signature"):
        wire.verify(KEY, frames)


@pytest.mark.parametrize("payload", [b"not json", b"[1, 2]", b'{"no": "type"}'])
def test_signed_garbage_is_refused(payload):
    import hashlib
    import hmac

    sig = hmac.new(KEY, payload, hashlib.sha256).hexdigest().encode()
    with pytest.raises(wire.BadMessage, match="JSON"):
        wire.verify(KEY, [sig, payload])


def test_nan_is_not_sent():
    with pytest.raises(ValueError):
        wire.sign(KEY, {"type": "sample", "rss": float("nan")})


@pytest.mark.parametrize(
    "text, why",
    [
        ("NaN", "NaN is not a number"),
        ('{"x": -Infinity}', "-Infinity is not a number"),
        ("[1e400]", "out of range"),
        ("9" * 5000, "not JSON"),
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
        (b"\xff\xfe\x00", "not JSON"),
    ],
)
def test_loads_refuses_what_json_would_let_through_or_crash_on(text, why):
    with pytest.raises(wire.BadMessage, match=why):
        wire.loads(text)


def test_an_oversized_payload_is_refused_before_its_signature_is_checked():
    frames = wire.sign(KEY, {"type": "sample", "pad": "x" * wire.MAX_SAMPLE_BYTES})
    with pytest.raises(wire.BadMessage, match="at most"):
        wire.verify(KEY, frames)
    assert wire.verify(KEY, frames, max_bytes=2 * wire.MAX_SAMPLE_BYTES)["type"] == "sample"


def test_replays_and_older_messages_are_refused_per_sender():
    replays = wire.Replays()
    replays.admit("a", 1)
    replays.admit("a", 5)
    replays.admit("b", 1)  # another sender counts on its own
    for seq in (5, 4, 0):
        with pytest.raises(wire.BadMessage, match="a replayed message"):
            replays.admit("a", seq)
    for seq in (None, -1, "6", True, 6.0):
        with pytest.raises(wire.BadMessage, match="without a sequence number"):
            replays.admit("a", seq)
    replays.admit("a", 6)
    replays.forget("a")
    replays.admit("a", 1)  # a new stream of that sender starts again
