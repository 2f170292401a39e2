"""Signed JSON messages: what a rank's sampler sends and what the notebook republishes.

Each message is two ZMQ frames, ``[signature, payload]``: the payload is UTF-8
JSON and the signature its HMAC-SHA256 (hex) under the cluster's metrics key.
A message that is not two frames, whose signature does not match, or whose
payload is not a JSON object is refused with :class:`BadMessage`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

#: Bumped when a field changes meaning.
VERSION = 1


class BadMessage(ValueError):
    """A metrics message that is malformed or not signed with the cluster's key."""


def sign(key: bytes, message: dict[str, Any]) -> list[bytes]:
    """The frames for ``message``: ``[hex HMAC-SHA256, JSON payload]``."""
    payload = json.dumps(message, separators=(",", ":"), allow_nan=False).encode()
    return [hmac.new(key, payload, hashlib.sha256).hexdigest().encode(), payload]


def verify(key: bytes, frames: list[bytes]) -> dict[str, Any]:
    """The message in ``frames`` if it is well formed and signed with ``key``; else BadMessage."""
    if len(frames) != 2:
        raise BadMessage(f"expected 2 frames (signature, payload), got {len(frames)}")
    signature, payload = bytes(frames[0]), bytes(frames[1])
    expected = hmac.new(key, payload, hashlib.sha256).hexdigest().encode()
    if not hmac.compare_digest(signature, expected):
        raise BadMessage("bad signature")
    try:
        message = json.loads(payload)
    except ValueError as e:
        raise BadMessage(f"payload is not JSON: {e}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise BadMessage("payload is not a JSON object with a 'type'")
    return message
