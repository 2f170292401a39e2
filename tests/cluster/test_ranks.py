"""The rank table: hosts, locality, the store's address, placement."""

import pytest

from lepton_nb import RankState
from lepton_nb.cluster.ranks import RankRecord, RankTable
from lepton_nb.engine.identity import EngineReport, LaunchIndex


def _rec(rank, host, local, addr, gpu=None):
    report = EngineReport(host, addr, "eth0", 100 + rank, LaunchIndex("local", rank, local),
                          (), False, 2, "3.11.7", "2.13.0", "0.1.0")  # fmt: skip
    return RankRecord(rank, local, 10 + rank, "s1", report, gpu, 1)


def test_one_host_table():
    t = RankTable([_rec(1, "vm", 1, "127.0.0.1"), _rec(0, "vm", 0, "127.0.0.1")], "vm")
    assert [r.rank for r in t] == [0, 1] and t.world_size == len(t) == 2
    assert t.hosts() == {"vm": [0, 1]} and not t.spans_hosts()
    assert t.master_addr() == "127.0.0.1" and t.is_local(0) and t.is_local(t[1])
    assert t.hosts_to_name() == {}  # one host, the notebook's: messages need no host
    assert t.engine_ids([1]) == {1: 11} and t.rank_of_engine(10) == 0
    assert t.backend() == "gloo" and not t.gpu_ranks()
    assert t.placement()[1] == {"rank": 1, "engine_id": 11, "host": "vm", "addr": "127.0.0.1",
                                "local_rank": 1, "pid": 101, "device": "cpu", "gpu": None}  # fmt: skip


def test_two_host_table():
    t = RankTable([_rec(0, "node1", 0, "10.0.0.11", 0), _rec(1, "node2", 0, "10.0.0.12", 0)], "vm")
    assert t.spans_hosts() and t.master_addr() == "10.0.0.11"  # never loopback across hosts
    assert not t.is_local(0) and t.hosts_to_name() == {0: "node1", 1: "node2"}
    assert t.backend() == "nccl" and t[0].device == "cuda:0"
    restarting = t.with_state([1], RankState.RESTARTING)
    assert restarting[1].state is RankState.RESTARTING and t[1].state is RankState.IDLE


def test_ranks_must_be_numbered_from_zero():
    with pytest.raises(ValueError, match="ranks must be 0..n-1"):
        RankTable([_rec(1, "vm", 0, "127.0.0.1")])
