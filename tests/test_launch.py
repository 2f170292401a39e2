"""Engine sets behind the ranks: signing, private runtime files, clean stop."""

import os


def test_messages_are_signed_and_runtime_files_are_private(cluster):
    import stat

    session = cluster.client.session
    assert session.key and session.signature_scheme.startswith("hmac-")
    files = cluster._sets.runtime_files()
    assert any("security" in f for f in files) and any("log" in f for f in files)
    for f in files:
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600, f


def test_stop_leaves_no_runtime_files_or_engines(make_cluster):
    import psutil

    c = make_cluster(n=1)
    files, pid = c._sets.runtime_files(), c.placement[0]["pid"]
    assert files
    c.stop()
    c.stop()  # twice is fine
    assert not any(os.path.exists(f) for f in files)
    assert not psutil.pid_exists(pid)
