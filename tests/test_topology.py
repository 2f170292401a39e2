"""Topology: link classes, ring order, plans; discovery on a real cluster."""

from __future__ import annotations

import pytest

from lepton_nb.compress import ErrorFeedback, MomentumCorrection, TopK
from lepton_nb.topology import (
    BACKEND,
    COMPRESS_LINKS,
    SHARED_MEMORY,
    RankInfo,
    Topology,
    describe,
    discover,
)


def _cpu(rank: int, host: str, socket: int | None = 0) -> RankInfo:
    return RankInfo(rank, host, "cpu", socket)


def _gpu(rank: int, bus: str, links: dict[str, str]) -> RankInfo:
    return RankInfo(rank, "node", "cuda:0", 0, bus, tuple(links.items()))


def test_one_host_cpu_ranks_share_memory_and_plan_flat():
    topo = Topology.from_ranks([_cpu(1, "a"), _cpu(0, "a")])
    assert [i.rank for i in topo.ranks] == [0, 1]
    assert topo.link(0, 1) == topo.link(1, 0) == "shm"
    plan = topo.plan(TopK(0.01))
    assert not plan.hierarchical and plan.ring == [0, 1] and plan.ring_link == "shm"
    assert plan.compress and plan.compressor == repr(TopK(0.01))
    assert f"flat ring [0, 1] over shm, compressed with {TopK(0.01)!r}" in str(plan)
    assert not topo.plan(None).compress
    assert "uncompressed (no compressor)" in str(topo.plan(None))


def _shared(measured: dict[str, float], hosts=("a", "a")) -> Topology:
    facts = tuple(("shm", path, s) for path, s in measured.items())
    return Topology.from_ranks(
        [RankInfo(r, h, "cpu", 0, shared_memory=True, measured=facts) for r, h in enumerate(hosts)]
    )


def test_shared_memory_plans_choose_by_what_was_measured():
    c = TopK(0.01)
    topo = _shared({SHARED_MEMORY: 0.001, BACKEND: 0.008, repr(c): 0.004})
    assert topo.shared_memory and topo.measured == {"shm": {SHARED_MEMORY: 0.001, BACKEND: 0.008, repr(c): 0.004}}
    plain = topo.plan(None)
    assert plain.shared_memory and plain.dense_shared and not plain.compress
    text = str(plain)
    assert text.startswith("one host: ranks [0, 1] reduce through a shared-memory segment over shm, "
                           "uncompressed (no compressor)")  # fmt: skip
    assert "measured on shm (4 MiB float32, slower rank): shared memory 1.00 ms, gloo all_reduce 8.00 ms" in text
    slower = topo.plan(c)  # compressing measured slower: dense through shared memory
    assert not slower.compress and slower.dense_shared
    assert f"shared memory measured faster than compressing with {c!r}" in str(slower)
    assert f"{c!r} 4.00 ms" in str(slower)
    forced = topo.plan(c, compress_links=frozenset({"shm"}))  # asked for: compressed anyway
    assert forced.compress and f"flat ring [0, 1] over shm, compressed with {c!r} (compress_links)" in str(forced)
    faster = _shared({SHARED_MEMORY: 0.01, repr(c): 0.004}).plan(c)
    assert faster.compress and "(measured faster than shared memory)" in str(faster)
    pending = _shared({SHARED_MEMORY: 0.001}).plan(ErrorFeedback(c))
    assert pending.compress and "to be measured against shared memory at its first allreduce" in str(pending)
    momentum = MomentumCorrection(c)  # never skipped: it carries the optimizer's momentum
    kept = _shared({SHARED_MEMORY: 0.001, repr(momentum): 1.0}).plan(momentum)
    assert kept.compress and "(it carries the optimizer's momentum: never skipped)" in str(kept)
    off = topo.plan(c, compress_links=frozenset({"network"}))
    assert not off.compress and "uncompressed: not on shm (compress_links)" in str(off)


def test_ranks_on_several_hosts_never_plan_shared_memory():
    topo = _shared({SHARED_MEMORY: 0.001}, hosts=("a", "b"))
    assert topo.plan(None).hierarchical and not topo.plan(None).shared_memory
    assert not Topology.from_ranks([_cpu(0, "a"), _cpu(1, "a")]).plan(None).shared_memory


def test_two_sockets_are_a_sys_link():
    topo = Topology.from_ranks([_cpu(0, "a", 0), _cpu(1, "a", 1), _cpu(2, "a", None)])
    assert topo.link(0, 1) == "sys"
    assert topo.link(0, 2) == "shm"  # unpinned: may share the socket


def test_ring_keeps_hosts_together_and_crosses_the_network_twice():
    hosts = ["a", "b", "a", "b", "a", "b"]
    topo = Topology.from_ranks([_cpu(r, h) for r, h in enumerate(hosts)])
    ring = topo.ring()
    assert ring == [0, 2, 4, 1, 3, 5]
    crossings = sum(topo.link(ring[i], ring[(i + 1) % 6]) == "network" for i in range(6))
    naive = sum(topo.link(i, (i + 1) % 6) == "network" for i in range(6))
    assert crossings == 2 and naive == 6
    assert topo.ring_cost(ring) < topo.ring_cost(list(range(6)))


def test_spanning_hosts_gives_a_hierarchical_plan_compressed_across_hosts():
    topo = Topology.from_ranks([_cpu(r, h) for r, h in enumerate(["a", "b", "a", "b"])])
    plan = topo.plan(ErrorFeedback(TopK(0.01)))
    assert plan.hierarchical
    assert plan.groups == {"a": [0, 2], "b": [1, 3]} and plan.leaders == [0, 1]
    assert plan.ring_link == "network" and plan.compress
    text = str(plan)
    assert "reduce within each host" in text and "between leaders [0, 1] over network" in text
    assert "broadcast from each leader" in text
    # the link choice is the caller's: no compression across hosts if asked so
    assert not topo.plan(ErrorFeedback(TopK(0.01)), compress_links=frozenset({"shm"})).compress


def test_gpu_ring_follows_nvlink_and_skips_compression_there():
    buses = ["A", "B", "C", "D"]
    nvl = {("A", "C"), ("C", "B"), ("B", "D"), ("D", "A")}  # an NVLink ring A-C-B-D

    def links_of(bus):
        return {
            o: "nvlink" if (bus, o) in nvl or (o, bus) in nvl else "pcie" for o in buses if o != bus
        }

    topo = Topology.from_ranks([_gpu(r, b, links_of(b)) for r, b in enumerate(buses)])
    assert topo.link(0, 2) == "nvlink" and topo.link(0, 1) == "pcie"
    ring = topo.ring()
    assert ring == [0, 2, 1, 3]
    assert topo.slowest(ring) == "nvlink"
    assert "nvlink" not in COMPRESS_LINKS
    assert not topo.plan(TopK(0.01)).compress  # compression rarely pays on NVLink
    assert topo.plan(TopK(0.01), compress_links=frozenset({"nvlink"})).compress


def test_a_rank_has_no_link_to_itself():
    topo = Topology.from_ranks([_cpu(0, "a"), _cpu(1, "a")])
    with pytest.raises(ValueError, match="rank 0 has no link to itself"):
        topo.link(0, 0)


def test_describe_this_process(monkeypatch):
    monkeypatch.setenv("LEPTON_ENGINE_HOST", "here-for-the-test")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    info = describe()
    assert info.host == "here-for-the-test" and info.device == "cpu" and info.gpu_bus_id is None
    assert info.socket is None or info.socket >= 0
    assert discover(cluster=None).world_size >= 1


def test_discover_a_real_cluster(cluster):
    topo = cluster.topology
    assert topo is cluster.topology  # discovered once per process group
    assert [i.rank for i in topo.ranks] == [0, 1]
    assert len(topo.hosts()) == 1
    assert topo.link(0, 1) in ("shm", "sys")
    assert "ring: [0, 1]" in str(topo)
    assert discover(cluster).ranks == topo.ranks
