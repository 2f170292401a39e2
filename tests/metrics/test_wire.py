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
