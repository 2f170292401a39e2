import json
import os
import stat

from lepton_nb.metrics import runtime


def test_write_read_remove(tmp_path):
    path = runtime.write(
        {"cluster": "c1", "endpoint": "tcp://127.0.0.1:1", "key": "ab" * 32, "pid": 1},
        str(tmp_path),
    )
    assert os.path.basename(path) == "lepton-cluster-c1.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert runtime.find(str(tmp_path)) == [path]
    assert runtime.read(path)["endpoint"] == "tcp://127.0.0.1:1"
    runtime.remove(path)
    runtime.remove(path)  # twice is fine
    assert runtime.find(str(tmp_path)) == []


def test_unsafe_or_malformed_files_are_ignored(tmp_path, caplog):
    loose = tmp_path / "lepton-cluster-loose.json"
    loose.write_text(json.dumps({"cluster": "x", "endpoint": "e", "key": "k", "pid": 1}))
    loose.chmod(0o644)
    assert runtime.read(str(loose)) is None
    assert "must be mode 0600" in caplog.text
    bad = tmp_path / "lepton-cluster-bad.json"
    bad.write_text("{not json")
    bad.chmod(0o600)
    assert runtime.read(str(bad)) is None
    assert "unreadable cluster file" in caplog.text
    partial = tmp_path / "lepton-cluster-partial.json"
    partial.write_text(json.dumps({"cluster": "x"}))
    partial.chmod(0o600)
    assert runtime.read(str(partial)) is None
    assert "it lacks cluster, endpoint, key, pid" in caplog.text
    short = tmp_path / "lepton-cluster-short.json"
    short.write_text(json.dumps({"cluster": "x", "endpoint": "tcp://h:1", "key": "00", "pid": 1}))
    short.chmod(0o600)
    assert runtime.read(str(short)) is None
    assert "its 'key' is '00'" in caplog.text
    assert runtime.read(str(tmp_path / "lepton-cluster-gone.json")) is None


def test_outside_a_kernel_there_is_no_connection_file():
    assert runtime.kernel_connection_file() is None
