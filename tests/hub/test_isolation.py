"""alice and bob on one hub: each user's clusters are their own, under /user/<name>/."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import psutil
import pytest

pytestmark = pytest.mark.slow

FACTS = """
import json, lepton_nb
c = lepton_nb.get_cluster()
print(json.dumps({"id": c.cluster_id, "pids": [p["pid"] for p in c.placement],
                  "files": c.runtime_files, "runtime": c.collector.runtime_file}))
"""

#: A stranger's client: connect to a controller port and send a message signed with another key.
STRANGER = """
import sys, zmq
from jupyter_client.session import Session
sock = zmq.Context.instance().socket(zmq.DEALER)
sock.connect(sys.argv[1])
Session(key=b"not-the-owners-key", signature_scheme="hmac-sha256").send(sock, "connection_request",
                                                                          content={})
print("answered" if sock.poll(3000) else "no answer")
"""


def _as(user: str, *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", user, "--", *args], capture_output=True, text=True,
                          timeout=60, **kw)  # fmt: skip


def _wait_for(check, timeout: float, what: str):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.2)
    return value


@pytest.fixture(scope="module")
def both(hub, tokens, request):
    """A cluster in a kernel of alice's and one of bob's (the site says CPU ranks)."""
    from .hub import UserKernel

    kernels = {name: UserKernel(hub, name, tokens[name]) for name in ("alice", "bob")}
    facts = {}
    for name, k in kernels.items():
        k.run("%lepton_cluster start -n 2")
        facts[name] = k.json(FACTS)
    yield kernels, facts
    for k in kernels.values():
        try:
            k.run("%lepton_cluster stop", timeout=60)
        finally:
            k.close()


def test_engines_run_as_their_user(both):
    _, facts = both
    for name, f in facts.items():
        assert {psutil.Process(p).username() for p in f["pids"]} == {name}


def test_the_clusters_route_and_prometheus_show_only_the_users_own(hub, tokens, both):
    _, facts = both
    for me, other in (("alice", "bob"), ("bob", "alice")):
        def listed(me=me):  # the server picks a new cluster up within its poll interval
            r = hub.get(me, "lepton/api/clusters", tokens[me])
            assert r.status_code == 200, r.text
            ids = {c["cluster"] for c in r.json()["clusters"]}
            return ids if facts[me]["id"] in ids else None

        ids = _wait_for(listed, 30, f"{me}'s cluster in her/his listing")
        assert facts[other]["id"] not in ids
        def scraped(me=me):
            text = hub.get(me, "lepton/metrics", tokens[me]).text
            return text if facts[me]["id"] in text else None

        text = _wait_for(scraped, 30, f"{me}'s series")
        assert f'cluster="{facts[other]["id"]}"' not in text
        # no token, or the other user's: refused
        assert hub.get(me, "lepton/api/clusters", "").status_code == 403
        assert hub.get(me, "lepton/api/clusters", tokens[other]).status_code == 403
        assert hub.get(me, "lepton/metrics", tokens[other]).status_code == 403


def test_bob_cannot_read_alices_files(both):
    _, facts = both
    files = facts["alice"]["files"] + [facts["alice"]["runtime"]]
    assert any("security" in f for f in files) and any(f.endswith(".json") for f in files)
    for path in files:
        out = _as("bob", "cat", path)
        assert out.returncode != 0 and "Permission denied" in out.stderr, (path, out)
    assert _as("alice", "cat", facts["alice"]["runtime"]).returncode == 0  # she can


def test_a_client_without_alices_key_is_refused_and_logged(both):
    _, facts = both
    files = facts["alice"]["files"]
    info = json.loads(open(next(f for f in files if f.endswith("-client.json"))).read())
    log = next(f for f in files if "ipcontroller" in f and f.endswith(".log"))
    endpoint = f"{info['interface']}:{info['registration']}"
    out = _as("bob", sys.executable, "-c", STRANGER, endpoint)
    assert out.stdout.strip() == "no answer", out
    _wait_for(lambda: "Invalid Signature" in open(log).read(), 10, "the refusal in alice's log")
