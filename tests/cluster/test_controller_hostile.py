"""The ipyparallel controller refuses a client that does not have the cluster's key."""

from __future__ import annotations

import json
import time

import pytest
import zmq
from jupyter_client.session import Session

pytestmark = pytest.mark.slow


def _ask(endpoint: str, session: Session, wait: float) -> list[bytes] | None:
    """Send a connection request as an ipyparallel client would; the reply, or None."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        session.send(sock, "connection_request", content={})
        return sock.recv_multipart() if sock.poll(wait * 1000) else None
    finally:
        sock.close(0)


def test_a_message_signed_with_another_key_is_refused_and_logged(cluster):
    files = cluster.runtime_files
    with open(next(f for f in files if f.endswith("-client.json"))) as f:
        info = json.load(f)
    log = next(f for f in files if "ipcontroller" in f and f.endswith(".log"))
    endpoint = f"{info['interface']}:{info['registration']}"
    scheme = info["signature_scheme"]
    with open(log) as f:  # ipyparallel logs "Bad Query Message" with the ValueError below it
        before = f.read().count("Invalid Signature")

    assert _ask(endpoint, Session(key=b"wrong", signature_scheme=scheme), 3.0) is None

    deadline = time.monotonic() + 10
    while True:
        with open(log) as f:
            if f.read().count("Invalid Signature") > before:
                break
        assert time.monotonic() < deadline, f"no 'Invalid Signature' in {log} after 10 s"
        time.sleep(0.1)
    # the same request with the cluster's key is answered: only the key was wrong
    owner = Session(key=info["key"].encode(), signature_scheme=scheme)
    reply = _ask(endpoint, owner, 10.0)
    assert reply is not None, "the controller did not answer its own key"
    _, frames = owner.feed_identities(reply)
    assert owner.deserialize(frames)["header"]["msg_type"] == "connection_reply"
    cluster.execute("x = 1", stream=False)
