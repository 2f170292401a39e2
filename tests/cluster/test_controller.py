"""The controller: signed messages, a private profile with 0600 files, nothing left on stop."""

import os
import stat


def test_messages_are_signed_and_runtime_files_are_private(cluster):
    session = cluster.client.session
    assert session.key and session.signature_scheme.startswith("hmac-")
    files = cluster.runtime_files
    assert any("security" in f for f in files) and any("log" in f for f in files)
    for f in files:
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600, f
    profile = os.path.dirname(os.path.dirname(next(f for f in files if "security" in f)))
    assert stat.S_IMODE(os.stat(profile).st_mode) == 0o700
    # a local cluster needs no encryption: its engines are on this host
    assert not cluster.client.curve_serverkey


def test_stop_leaves_no_runtime_files_or_engines(make_cluster):
    import psutil

    c = make_cluster(n=1)
    files, pid = c.runtime_files, c.placement[0]["pid"]
    assert files
    c.stop()
    c.stop()  # twice is fine
    assert not any(os.path.exists(f) for f in files)
    assert not os.path.exists(os.path.dirname(os.path.dirname(next(f for f in files if "security" in f))))
    assert not psutil.pid_exists(pid)
