"""Signed JSON messages: what a rank's sampler sends and what the notebook republishes.

Each message is two ZMQ frames, ``[signature, payload]``: the payload is UTF-8
JSON and the signature its HMAC-SHA256 (hex) under the cluster's metrics key.
A message that is not two frames, is larger than its channel allows, whose
signature does not match, or whose payload is not a JSON object is refused
with :class:`BadMessage`. Nothing here unpickles or evaluates anything: a
payload is only ever parsed as JSON (:func:`loads`), and only once signed.

Replays: every message carries its ``sender`` (a random id per sending
stream) and a ``seq`` that the sender increases by one each message;
:class:`Replays` refuses a message whose ``seq`` is not above the last one
accepted from that sender, so a captured message cannot be sent again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Hashable
from typing import Any

#: Bumped when a field changes meaning (2: every message carries ``sender`` and ``seq``).
VERSION = 2
#: The largest sample a rank may send (one is a few KB; link rows grow with world size).
MAX_SAMPLE_BYTES = 1 << 20
#: The largest snapshot the notebook may publish (a row per rank, a row per link).
MAX_SNAPSHOT_BYTES = 64 << 20


class BadMessage(ValueError):
    """A metrics message that is malformed or not signed with the cluster's key."""


def sign(key: bytes, message: dict[str, Any]) -> list[bytes]:
    """The frames for ``message``: ``[hex HMAC-SHA256, JSON payload]``."""
    payload = json.dumps(message, separators=(",", ":"), allow_nan=False).encode()
    return [hmac.new(key, payload, hashlib.sha256).hexdigest().encode(), payload]


def verify(key: bytes, frames: list[bytes], max_bytes: int = MAX_SAMPLE_BYTES) -> dict[str, Any]:
    """The message in ``frames`` if it is well formed and signed with ``key``; else BadMessage."""
    if len(frames) != 2:
        raise BadMessage(f"expected 2 frames (signature, payload), got {len(frames)}")
    signature, payload = bytes(frames[0]), bytes(frames[1])
    if len(payload) > max_bytes:
        raise BadMessage(f"a payload of {len(payload)} bytes (at most {max_bytes})")
    expected = hmac.new(key, payload, hashlib.sha256).hexdigest().encode()
    if not hmac.compare_digest(signature, expected):
        raise BadMessage("bad signature")
    message = loads(payload)
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise BadMessage("payload is not a JSON object with a 'type'")
    return message


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} is out of range")
    return value


def loads(text: str | bytes) -> Any:
    """``text`` parsed as strict JSON: no NaN or Infinity, no overflowing number; else BadMessage.

    The one parser of what lepton_nb reads from outside (messages, runtime files,
    WebSocket frames): it also turns nesting too deep to parse into BadMessage.
    """
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        raise BadMessage("payload is not JSON: nested too deeply") from None
    except ValueError as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise BadMessage(f"payload is not JSON: {str(e)[:200]}") from None
    return value


def is_int(value: Any) -> bool:
    """True for a JSON integer (``True`` and ``False`` are not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """True for a JSON number (:func:`loads` already refused NaN and infinities)."""
    return is_int(value) or (isinstance(value, float) and math.isfinite(value))


class Replays:
    """The last ``seq`` accepted from each sender: a message must carry a larger one."""

    def __init__(self) -> None:
        self._last: dict[Hashable, int] = {}

    def admit(self, sender: Hashable, seq: Any) -> None:
        """Accept ``seq`` from ``sender``, or raise BadMessage for a replayed or older one.

        Call it last, once the rest of the message is known good.
        """
        if not is_int(seq) or seq < 0:
            raise BadMessage(f"a message without a sequence number (seq {seq!r:.40})")
        last = self._last.get(sender)
        if last is not None and seq <= last:
            raise BadMessage(f"a replayed message (seq {seq}, already had {last})")
        self._last[sender] = seq

    def forget(self, sender: Hashable) -> None:
        """Drop what is known of ``sender`` (its stream has ended)."""
        self._last.pop(sender, None)
