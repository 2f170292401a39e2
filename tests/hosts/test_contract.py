"""The multi-host contract, run once per launcher (local, ssh, slurm) on the rig.

Everything that works on one host works across hosts: placement from the
engines' reports, an exact all_reduce, --gather, errors naming rank and host,
--timeout, restart on the rank's own host, scale, pushes that cross each link
once per host, the Trainer, and a stop that leaves nothing on any node.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

import lepton_nb
from lepton_nb import DistributedTimeout, RemoteError

from .conftest import expected_hosts, options

pytestmark = pytest.mark.slow


def _env():
    import os

    import torch.distributed as dist

    import lepton_nb as ln

    return {
        "rank": ln.rank(),
        "local_rank": ln.local_rank(),
        "host": __import__("socket").gethostname(),
        "master": os.environ["MASTER_ADDR"],
        "ifname": os.environ.get("GLOO_SOCKET_IFNAME"),
        "world": dist.get_world_size(),
        "pid": os.getpid(),
    }


def _all_reduce():
    import torch
    import torch.distributed as dist

    import lepton_nb as ln

    t = torch.arange(1000, dtype=torch.float64) * (ln.rank() + 1)
    dist.all_reduce(t)
    return t


def test_start_places_ranks_from_what_the_engines_report(hosts_cluster, rig):
    c, launcher = hosts_cluster, hosts_cluster.rig_launcher
    hosts = expected_hosts(launcher, rig)
    placement = c.placement
    assert [p["rank"] for p in placement] == [0, 1]
    assert sorted({p["host"] for p in placement}) == sorted(hosts)
    envs = c.run(_env)
    assert [e["host"] for e in envs] == [p["host"] for p in placement]
    assert [e["pid"] for e in envs] == [p["pid"] for p in placement]
    if launcher == "local":
        assert [p["local_rank"] for p in placement] == [0, 1]
        assert all(e["master"] == "127.0.0.1" and e["ifname"] == "lo" for e in envs)
    else:
        assert [p["host"] for p in placement] == ["node1", "node2"]  # contiguous, in host order
        assert [p["local_rank"] for p in placement] == [0, 0]
        assert [p["addr"] for p in placement] == [rig.node("node1").addr, rig.node("node2").addr]
        # rank 0's reachable address, never loopback; gloo on the interface that reaches the controller
        assert all(e["master"] == rig.node("node1").addr and e["ifname"] == "lep0" for e in envs)
        # ipyparallel's CurveZMQ encryption is on, and messages are still signed
        assert c.client.curve_serverkey and c.client.session.key
    assert [e["rank"] for e in envs] == [0, 1] and {e["world"] for e in envs} == {2}
    assert c.status().rows[1]["host"] == placement[1]["host"]


def test_all_reduce_across_hosts_is_exact(hosts_cluster):
    out = hosts_cluster.run(_all_reduce)
    expected = np.arange(1000, dtype=np.float64) * 3
    assert all(np.array_equal(t.numpy(), expected) for t in out)


def test_gather_and_streamed_output(hosts_cluster, capsys):
    code = "import socket\nprint('hello from', rank)\nwhere = socket.gethostname()\nsq = rank * rank"
    got = hosts_cluster.execute(code, gather=["where", "sq"])
    assert got == {"where": [p["host"] for p in hosts_cluster.placement], "sq": [0, 1]}
    out = capsys.readouterr().out
    assert "[rank 0] hello from 0" in out and "[rank 1] hello from 1" in out


def test_an_error_names_the_rank_and_its_host(hosts_cluster):
    with pytest.raises(RemoteError) as info:
        hosts_cluster.execute("if rank == 1:\n    raise ValueError('rank one refuses')\nok = 1",
                              gather=["ok"])  # fmt: skip
    err, host = info.value, hosts_cluster.placement[1]["host"]
    assert err.ranks == [1] and err.results == {0: {"ok": 1}}
    if hosts_cluster.rig_launcher != "local":
        assert f"rank 1 on {host}: ValueError: rank one refuses" in str(err)
        assert f"[rank 1 on {host}] ValueError" in "\n".join(err._render_traceback_())
    assert "rank one refuses" in err.failures[0].traceback


def test_timeout_then_the_next_cell_works(hosts_cluster):
    start = time.monotonic()
    with pytest.raises(DistributedTimeout) as info:
        hosts_cluster.execute("import time\nif rank == 1:\n    time.sleep(120)", timeout=2)
    assert info.value.timed_out == [1] and time.monotonic() - start < 30
    assert hosts_cluster.run(lambda: 7) == [7, 7]
    assert hosts_cluster.run(_all_reduce)[0][1].item() == 3.0


def test_restart_a_rank_on_its_own_host(hosts_cluster):
    before = hosts_cluster.placement[1]
    hosts_cluster.restart(1)
    after = hosts_cluster.placement[1]
    assert after["host"] == before["host"] and after["pid"] != before["pid"]
    assert after["engine_id"] != before["engine_id"] and after["local_rank"] == before["local_rank"]
    assert hosts_cluster.run(_all_reduce)[1][10].item() == 30.0
    assert [e["world"] for e in hosts_cluster.run(_env)] == [2, 2]


def test_scale_up_and_down_keeps_hosts_contiguous(hosts_cluster, rig):
    import psutil

    c = hosts_cluster
    c.scale(4)
    hosts = [p["host"] for p in c.placement]
    assert len(hosts) == 4 and hosts == sorted(hosts, key=hosts.index)  # each host's ranks contiguous
    if c.rig_launcher != "local":
        assert hosts == ["node1", "node1", "node2", "node2"]
        assert [p["local_rank"] for p in c.placement] == [0, 1, 0, 1]
    out = c.run(_all_reduce)
    assert out[3][1].item() == 1 + 2 + 3 + 4
    before = {p["pid"] for p in c.placement}
    c.scale(2)
    assert c.world_size == 2 and [e["world"] for e in c.run(_env)] == [2, 2]
    assert sorted({p["host"] for p in c.placement}) == sorted(set(hosts))  # one rank per host again
    gone = before - {p["pid"] for p in c.placement}
    deadline = time.monotonic() + 30
    while any(psutil.pid_exists(p) for p in gone) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in gone if psutil.pid_exists(p)]  # the stopped engines are gone


def test_push_crosses_each_link_once_per_host(rig, make_cluster_on):
    c = make_cluster_on(per_host=2)
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, size=32_000_000, dtype=np.uint8)  # 32 MB that lz4 cannot shrink
    hosts = c.ranks.hosts()
    if c.rig_launcher == "local":
        c.push({"data": data})
        assert c.cache_info()["shared_bytes"] == data.nbytes  # one segment shared by both ranks
    else:
        before = {n.name: rig.rx_bytes(n.name) for n in rig.nodes}
        c.push({"data": data})
        crossed = {n.name: rig.rx_bytes(n.name) - before[n.name] for n in rig.nodes}
        for node, ranks in hosts.items():
            assert len(ranks) == 2
            assert data.nbytes <= crossed[node] < 1.2 * data.nbytes, crossed  # once, not twice
        assert c.cache_info()["bytes_sent"] < 2.1 * data.nbytes  # one compressed copy per host
        assert c.run(lambda: __import__("lepton_nb").transfer.receive.is_shared(
            __import__("lepton_nb").engine.namespace.user_namespace()["data"])) == [True] * 4
    sums = c.run(lambda: int(__import__("lepton_nb").engine.namespace.user_namespace()["data"][::997].sum()))
    assert sums == [int(data[::997].sum())] * 4
    # a compressed allreduce over 2 hosts x 2 ranks: hierarchical when the ranks span hosts
    from lepton_nb.compress import ErrorFeedback, TopK

    plan = c.topology.plan(ErrorFeedback(TopK(0.1)))
    assert plan.hierarchical == (c.rig_launcher != "local")
    out = c.run(_compressed_allreduce)
    assert all(torch_equal(out[0], t) for t in out)  # every rank gets the very same tensor
    # what the monitor draws from: the ranks on their hosts, each link with its class
    snap = _published_after(c, time.time())
    assert {r["host"] for r in snap["ranks"]} == set(hosts)
    links = {(x["src"], x["dst"]): x["class"] for x in snap["links"] if x["bytes"]}
    assert any(src == -1 for src, _ in links) and any(src >= 0 for src, _ in links)
    for (src, dst), cls in links.items():
        if src == -1:
            assert cls == ("shm" if c.ranks.is_local(dst) else "network"), (src, dst)
        else:
            assert cls == c.topology.link(src, dst), (src, dst)
    if c.rig_launcher != "local":
        assert snap["notebook"]["host"] not in hosts  # the notebook's own box in the picture
        assert "network" in links.values()


def _published_after(c, t, timeout=10.0):
    """The collector's first snapshot published after epoch time ``t``."""
    deadline = time.monotonic() + timeout
    while (c.collector.published or {}).get("time", 0) <= t:
        assert time.monotonic() < deadline, "no snapshot published"
        time.sleep(0.05)
    return c.collector.published


def _kept_bytes(n):
    import numpy as np

    return np.random.default_rng(7).integers(0, 256, size=n, dtype=np.uint8)


def _digest(a):
    import hashlib

    import lepton_nb

    return hashlib.sha256(a.tobytes()).hexdigest(), lepton_nb.rank()


def test_a_kept_value_moves_rank_to_rank_across_hosts(rig, hosts_cluster):
    import hashlib

    n = 8_000_000  # that lz4 cannot shrink: what crosses the link is the value itself
    ref = hosts_cluster.submit(_kept_bytes, n, keep=True, ranks=[0]).result(60)
    where = {n_.name: rig.rx_bytes(n_.name) for n_ in rig.nodes}
    sent = hosts_cluster.link_bytes().get((0, 1), 0)
    digest, rank = hosts_cluster.submit(_digest, ref, ranks=[1]).result(60)
    assert rank == 1 and digest == hashlib.sha256(_kept_bytes(n).tobytes()).hexdigest()
    assert hosts_cluster.link_bytes().get((0, 1), 0) - sent >= n  # rank 0 sent it to rank 1
    if hosts_cluster.rig_launcher != "local":  # compressed, straight from rank 0's host
        target = hosts_cluster.placement[1]["host"]
        crossed = rig.rx_bytes(target) - where[target]
        assert n <= crossed < 1.2 * n, crossed


def _compressed_allreduce():
    import torch

    import lepton_nb as ln
    from lepton_nb.collective import allreduce
    from lepton_nb.compress import ErrorFeedback, TopK

    torch.manual_seed(ln.rank())
    t = torch.randn(100_000)
    allreduce(t, ErrorFeedback(TopK(0.1)), op="mean")
    return t


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


@pytest.fixture
def make_cluster_on(request, rig, hosts_cluster):
    """A second cluster of the same launcher as ``hosts_cluster``, stopped after the test."""

    def make(per_host: int):
        c = lepton_nb.Cluster(**options(hosts_cluster.rig_launcher, rig, per_host))
        request.addfinalizer(c.stop)
        c.start()
        c.rig_launcher = hosts_cluster.rig_launcher
        return c

    return make


def _digits():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return (x[:512] / 16.0).astype(np.float32), y[:512].astype(np.int64)


def _model():
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))


def test_trainer_across_hosts_equals_one_host(hosts_cluster, cluster, tmp_path):
    import torch

    x, y = _digits()
    weights = []
    for c, name in ((hosts_cluster, "hosts"), (cluster, "one-host")):
        trainer = lepton_nb.Trainer(c, strategy="data", compression="topk:0.1",
                                    checkpoint_dir=str(tmp_path / name), progress=False)  # fmt: skip
        trainer.fit(_model(), (x, y), batch_size=32, epochs=2, lr=0.05)
        weights.append(torch.nn.utils.parameters_to_vector(trainer.model.parameters()))
    assert torch.allclose(weights[0], weights[1], atol=1e-6, rtol=0)


def test_stop_leaves_nothing_on_any_node(rig, hosts_cluster, shm_usage):
    import psutil

    baseline = shm_usage()
    c = lepton_nb.Cluster(**options(hosts_cluster.rig_launcher, rig))
    c.start()
    c.push({"big": np.ones(2_000_000)})
    pids = [p["pid"] for p in c.placement]
    c.stop()
    deadline = time.monotonic() + 30
    while any(psutil.pid_exists(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if psutil.pid_exists(p)]
    assert not [job for job in rig.squeue() if c.cluster_id in job]  # its jobs left the queue
    deadline = time.monotonic() + 10
    while shm_usage() > baseline + (1 << 20) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert shm_usage() <= baseline + (1 << 20)


def test_trainer_restarts_a_killed_rank_and_resumes_across_hosts(hosts_cluster, cluster, tmp_path):
    import os
    import signal
    import threading

    from tests.train.test_trainer import _data, _model, _same

    ckpt = tmp_path / "ckpt"  # the nodes share this file system, as a real cluster's home does
    victim = hosts_cluster.placement[1]

    def kill_after_the_first_checkpoint() -> None:
        deadline = time.monotonic() + 120
        while not (ckpt / "epoch-0000" / "meta.json").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(victim["pid"], signal.SIGKILL)  # the rig's nodes share this machine's pids

    killer = threading.Thread(target=kill_after_the_first_checkpoint, daemon=True)
    killer.start()
    trainer = lepton_nb.Trainer(hosts_cluster, compression="topk:0.1", checkpoint_dir=str(ckpt),
                                progress=False, step_timeout=30)  # fmt: skip
    history = trainer.fit(_model(), _data(), batch_size=32, epochs=2, lr=0.05)
    killer.join(10)
    assert trainer.restarts == 1 and [h["epochs"] for h in history] == [1, 2]
    assert hosts_cluster.placement[1]["host"] == victim["host"]  # restarted on its own host
    assert hosts_cluster.placement[1]["pid"] != victim["pid"]
    resumed = lepton_nb.Trainer(hosts_cluster, compression="topk:0.1", checkpoint_dir=str(ckpt),
                                progress=False)  # fmt: skip
    h3 = resumed.fit(_model(), _data(), batch_size=32, epochs=3, lr=0.05, resume=True)
    assert [h["epochs"] for h in h3] == [1, 2, 3]
    plain = lepton_nb.Trainer(cluster, compression="topk:0.1", progress=False)  # one host, never killed
    plain.fit(_model(), _data(), batch_size=32, epochs=3, lr=0.05)
    assert _same(resumed.model, plain.model, atol=1e-6, rtol=1e-5)


def test_metrics_arrive_from_every_host(hosts_cluster):
    rows = hosts_cluster.metrics()
    assert [r["host"] for r in rows] == [p["host"] for p in hosts_cluster.placement]
    assert all(r["state"] in ("idle", "busy") and r["rss"] > 0 for r in rows)
    snap = hosts_cluster.collector.snapshot()
    assert {r["host"] for r in snap["ranks"]} == {p["host"] for p in hosts_cluster.placement}
