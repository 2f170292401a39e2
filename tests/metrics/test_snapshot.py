import os
import subprocess
import sys

from lepton_nb.metrics import snapshot


def _engine(pid=None):
    return {"engine_id": 3, "host": "h", "pid": pid or os.getpid()}


def test_states():
    me = os.getpid()
    sample = {"pid": me, "busy": False}
    assert snapshot.rank_state(None, None, None, True, 10) == "restarting"
    assert snapshot.rank_state({"engine_id": None}, None, None, True, 10) == "restarting"
    assert snapshot.rank_state(_engine(), None, None, True, 10) == "restarting"
    assert snapshot.rank_state(_engine(), sample, 0.1, True, 10) == "idle"
    assert snapshot.rank_state(_engine(), dict(sample, busy=True), 0.1, True, 10) == "busy"
    # a local rank silent for long but alive is still what it said (e.g. holding the GIL)
    assert snapshot.rank_state(_engine(), sample, 60, True, 10) == "idle"
    # a remote rank silent for longer than dead_after is dead
    assert snapshot.rank_state(_engine(), sample, 60, False, 10) == "dead"
    # a sample from the engine the rank had before a restart does not count
    assert snapshot.rank_state(_engine(), dict(sample, pid=1), 0.1, True, 10) == "restarting"


def test_a_local_rank_whose_process_is_gone_is_dead():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    sample = {"pid": proc.pid, "busy": False}
    assert snapshot.rank_state(_engine(proc.pid), sample, 0.1, True, 10) == "dead"


def test_memory_prefers_the_gpu():
    assert snapshot.memory(None) is None
    host = {"rss": 5, "memory_total": 100, "torch": None, "nvml": None}
    assert snapshot.memory(host) == {"kind": "host", "used": 5, "total": 100}
    torch = dict(host, torch={"allocated": 7, "reserved": 8})
    assert snapshot.memory(torch) == {"kind": "torch", "used": 7, "total": 8}
    gpu = dict(torch, nvml={"memory_used": 9, "memory_total": 80})
    assert snapshot.memory(gpu) == {"kind": "gpu", "used": 9, "total": 80}


def test_build_merges_ranks_and_links():
    me = os.getpid()
    placement = [{"rank": 0, "device": "cpu", "gpu": None}, {"rank": 1, "device": "cpu"}]
    engines = {0: _engine(me), 1: {"engine_id": None}}
    sample = {"pid": me, "busy": True, "rss": 1, "links": [[0, 1, 100, 50.0]], "time": 1.0}
    snap = snapshot.build(
        "abc",
        placement,
        engines,
        {0: (0.0, sample)},
        [[-1, 0, 10, 5.0]],
        "h",
        10.0,
        {"backend": "gloo"},
    )
    assert snap["cluster"] == "abc" and snap["world_size"] == 2 and snap["backend"] == "gloo"
    assert [r["state"] for r in snap["ranks"]] == ["busy", "restarting"]
    assert snap["ranks"][0]["links"] == [{"src": 0, "dst": 1, "bytes": 100, "rate": 50.0}]
    assert snap["links"] == [
        {"src": -1, "dst": 0, "bytes": 10, "rate": 5.0},
        {"src": 0, "dst": 1, "bytes": 100, "rate": 50.0},
    ]
