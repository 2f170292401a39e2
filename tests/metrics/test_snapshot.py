import os
import subprocess
import sys

from lepton_nb import RankState
from lepton_nb.cluster.ranks import RankRecord, RankTable
from lepton_nb.engine.identity import EngineReport, LaunchIndex
from lepton_nb.metrics import snapshot
from lepton_nb.metrics.snapshot import HubView
from lepton_nb.topology import RankInfo, Topology


def test_states():
    me = os.getpid()
    sample = {"pid": me, "busy": False}
    assert snapshot.rank_state(None, None, None, True, 10) == "restarting"
    assert snapshot.rank_state(me, None, None, True, 10) == "restarting"
    assert snapshot.rank_state(me, sample, 0.1, True, 10) is RankState.IDLE
    assert snapshot.rank_state(me, dict(sample, busy=True), 0.1, True, 10) == "busy"
    # a local rank silent for long but alive is still what it said (e.g. holding the GIL)
    assert snapshot.rank_state(me, sample, 60, True, 10) == "idle"
    # a remote rank silent for longer than dead_after is dead
    assert snapshot.rank_state(me, sample, 60, False, 10) == "dead"
    # a sample from the engine the rank had before a restart does not count
    assert snapshot.rank_state(me, dict(sample, pid=1), 0.1, True, 10) == "restarting"


def test_what_the_hub_says_counts_too():
    me = os.getpid()
    sample = {"pid": me, "busy": False}
    # a request the hub holds makes the rank busy before its next sample says so
    assert snapshot.rank_state(me, sample, 0.1, False, 10, queued=True) == "busy"
    # an engine the hub dropped is dead, whatever its last sample said
    assert snapshot.rank_state(me, sample, 0.1, False, 10, registered=False) == "dead"
    # while being replaced it is restarting, not dead
    assert snapshot.rank_state(None, None, None, False, 10, registered=False) == "restarting"


def test_a_local_rank_whose_process_is_gone_is_dead():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    sample = {"pid": proc.pid, "busy": False}
    assert snapshot.rank_state(proc.pid, sample, 0.1, True, 10) == "dead"


def test_states_are_the_rank_states():
    assert snapshot.STATES == ("idle", "busy", "dead", "restarting")
    assert set(snapshot.STATES) == {s.value for s in RankState}


def test_memory_prefers_the_gpu():
    assert snapshot.memory(None) is None
    host = {"rss": 5, "memory_total": 100, "torch": None, "nvml": None}
    assert snapshot.memory(host) == {"kind": "host", "used": 5, "total": 100}
    torch = dict(host, torch={"allocated": 7, "reserved": 8})
    assert snapshot.memory(torch) == {"kind": "torch", "used": 7, "total": 8}
    gpu = dict(torch, nvml={"memory_used": 9, "memory_total": 80})
    assert snapshot.memory(gpu) == {"kind": "gpu", "used": 9, "total": 80}


def _rec(rank, host, pid, state=RankState.IDLE):
    report = EngineReport(host, "127.0.0.1", "lo", pid, LaunchIndex("local", rank, rank),
                          (), False, 2, "3.11.7", "2.13.0", "0.1.0")  # fmt: skip
    return RankRecord(rank, rank, 3 + rank, "s1", report, None, 1, state)


def test_build_merges_ranks_and_links():
    me = os.getpid()
    table = RankTable([_rec(0, "h", me), _rec(1, "h", me, RankState.RESTARTING)], "h")
    sample = {"pid": me, "busy": True, "rss": 1, "links": [[0, 1, 100, 50.0]], "time": 1.0}
    snap = snapshot.build(
        "abc",
        table,
        {0: (0.0, sample)},
        [[-1, 0, 10, 5.0]],
        10.0,
        {"backend": "gloo"},
    )
    assert snap["cluster"] == "abc" and snap["world_size"] == 2 and snap["backend"] == "gloo"
    assert [r["state"] for r in snap["ranks"]] == ["busy", "restarting"]
    assert [r["engine_id"] for r in snap["ranks"]] == [3, None]  # none while it is replaced
    assert snap["ranks"][0]["device"] == "cpu" and snap["ranks"][0]["host"] == "h"
    sent = {"src": 0, "dst": 1, "bytes": 100, "rate": 50.0, "class": "shm"}
    assert snap["ranks"][0]["links"] == [sent]
    assert snap["links"] == [{"src": -1, "dst": 0, "bytes": 10, "rate": 5.0, "class": "shm"}, sent]
    assert snap["notebook"] == {"host": "h"}
    assert snap["ranks"][0]["series"] == {"memory": 1.0, "utilization": None, "sent": 50.0}
    assert snap["ranks"][1]["series"] == {"memory": None, "utilization": None, "sent": None}


def test_series_prefers_the_gpu_and_sums_what_the_rank_sent():
    host = {"rss": 5, "cpu_percent": 30.0, "links": [[1, 0, 9, 2.0], [1, 2, 9, 3.0], [0, 1, 9, 7.0]]}
    assert snapshot.series(host, 1) == ({"memory": 5.0, "utilization": 30.0, "sent": 5.0}, "cpu")
    gpu = dict(host, nvml={"memory_used": 7, "memory_total": 9, "utilization": 80})
    assert snapshot.series(gpu, 1) == ({"memory": 7.0, "utilization": 80.0, "sent": 5.0}, "gpu")
    no_util = dict(host, nvml={"memory_used": 7, "memory_total": 9, "utilization": None})
    assert snapshot.series(no_util, 1)[1] == "cpu"


def test_link_class_from_hosts_the_notebook_and_the_topology():
    me = os.getpid()
    table = RankTable([_rec(0, "nb", me), _rec(1, "nb", me), _rec(2, "node2", me)], "nb")
    assert snapshot.link_class(table, 0, 1) == "shm"
    assert snapshot.link_class(table, 1, 2) == "network"
    assert snapshot.link_class(table, -1, 0) == "shm"  # the notebook's own host
    assert snapshot.link_class(table, -1, 2) == "network"
    assert snapshot.link_class(table, 0, 7) == "network"  # a rank the table does not have
    # where the topology was discovered, its class (two GPUs on NVLink, one CPU rank elsewhere)
    topo = Topology.from_ranks([
        RankInfo(0, "nb", "cuda:0", 0, "0000:01", (("0000:02", "nvlink"),)),
        RankInfo(1, "nb", "cuda:0", 0, "0000:02", (("0000:01", "nvlink"),)),
        RankInfo(2, "node2"),
    ])  # fmt: skip
    assert snapshot.link_class(table, 0, 1, topo) == "nvlink"
    assert snapshot.link_class(table, 1, 2, topo) == "network"


def test_build_asks_the_table_which_ranks_are_local():
    me = os.getpid()
    sample = {"pid": me, "busy": False}
    samples = {0: (-1e9, sample)}  # received long ago
    # on the notebook's host, silence alone is not death; elsewhere it is
    here = snapshot.build("c", RankTable([_rec(0, "nb", me)], "nb"), samples, [], 10.0)
    there = snapshot.build("c", RankTable([_rec(0, "node2", me)], "nb"), samples, [], 10.0)
    assert here["ranks"][0]["state"] == "idle" and there["ranks"][0]["state"] == "dead"


def test_build_with_what_the_hub_says():
    me = os.getpid()
    table = RankTable([_rec(0, "h", me), _rec(1, "h", me)], "h")
    sample = {"pid": me, "busy": False}
    samples = {0: (0.0, sample), 1: (0.0, sample)}
    snap = snapshot.build(
        "c", table, samples, [], 1e12, hub=HubView(frozenset({3}), frozenset({3}))
    )
    assert [r["state"] for r in snap["ranks"]] == ["busy", "dead"]  # engine 4 is gone


def test_a_samplers_sample_passes_the_check_and_a_wrong_field_does_not():
    import pytest

    from lepton_nb.metrics import sampler, wire

    s = sampler.Sampler("tcp://127.0.0.1:9", b"k" * 32, "c1", 0, None, 1.0, sampler.Activity())
    good = s.read()
    good["links"] = [[0, 1, 10, 2.5]]
    good["nvml"] = {"index": 0, "memory_used": 1, "memory_total": 2, "utilization": None,
                    "pcie": None, "nvlink": {"tx_bytes_per_s": 0.0, "rx_bytes_per_s": 1}}  # fmt: skip
    assert snapshot.check_sample(good) is good
    for field, value in [
        ("rank", -1), ("rank", True), ("pid", 0), ("seq", "1"), ("busy", 1), ("rss", 1.5),
        ("time", "now"), ("torch", {"allocated": 1}), ("links", [[0, 1, 2]]),
        ("links", "0,1"), ("nvml", {"memory_total": 5}), ("nvml", []), ("version", 1),
        ("sender", ""),
    ]:  # fmt: skip
        with pytest.raises(wire.BadMessage, match=f"'{field}' is"):
            snapshot.check_sample(dict(good, **{field: value}))
    with pytest.raises(wire.BadMessage, match="without 'seq'"):
        snapshot.check_sample({k: v for k, v in good.items() if k != "seq"})
