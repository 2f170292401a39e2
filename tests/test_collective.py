"""allreduce and comm_hook on real gloo process groups: the session cluster (one host:
the shared-memory path, and compression forced with ``compress_links``) and four spawned
processes that report two hosts (the hierarchical plan)."""

from __future__ import annotations

import multiprocessing as mp
import os
from datetime import timedelta

import numpy as np
import pytest
import torch

from lepton_nb import collective
from lepton_nb.compress import FP16, ErrorFeedback, Int8, TopK
from lepton_nb.engine import free_port
from lepton_nb.links import NOTEBOOK
from lepton_nb.topology import COMPRESS_LINKS

N = 10_000


def _grad(rank: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(rank).standard_normal(N).astype(np.float32))


def _reduce_on_rank(compressor, op: str = "sum", compress_links=COMPRESS_LINKS):
    import torch.distributed as dist

    from lepton_nb import links
    from lepton_nb.collective import allreduce, last_plan

    before = links.local_bytes()
    t = _grad(dist.get_rank())
    mine = t.clone()
    out = allreduce(t, compressor, op, compress_links=compress_links)
    after = links.local_bytes()
    sent = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
    return out is t, mine, t, str(last_plan()), sent


def test_plain_allreduce_goes_through_shared_memory_exactly_and_counts_ring_bytes(cluster):
    (same0, g0, r0, plan0, sent0), (_, g1, r1, _, sent1) = cluster.run(_reduce_on_rank, None)
    assert same0  # in place
    assert torch.equal(r0, g0 + g1) and torch.equal(r0, r1)  # exact, the same bits
    shared = "one host: ranks [0, 1] reduce through a shared-memory segment over shm"
    assert f"{shared}, uncompressed (no compressor)" in plan0
    assert "measured on shm (4 MiB float32, slower rank): shared memory " in plan0
    assert sent0 == {(0, 1): N * 4} and sent1 == {(1, 0): N * 4}  # 2(W-1)/W of 40 kB


def _dense_ops_on_rank():
    import torch.distributed as dist

    from lepton_nb.collective import allreduce, last_plan

    rank, out = dist.get_rank(), {}
    for dtype in (torch.float16, torch.bfloat16, torch.float64, torch.int8, torch.int64):
        for op in ("sum", "max", "min") + (("mean",) if dtype.is_floating_point else ()):
            for n in (7, 300_001):  # one step; chunked, with a remainder
                gen = torch.Generator().manual_seed(rank * 7 + n)
                t = (torch.randn(n, generator=gen, dtype=torch.float64) * 50).to(dtype)
                out[(dtype, op, n)] = (t.clone(), allreduce(t, op=op).clone())
    return out, str(last_plan())


def test_dense_ops_and_dtypes_are_exact_in_rank_order_on_the_session_cluster(cluster):
    (got0, plan0), (got1, _) = cluster.run(_dense_ops_on_rank)
    for (dtype, op, n), (a, r0) in got0.items():
        b, r1 = got1[(dtype, op, n)]
        expected = {"sum": a + b, "mean": (a + b) / 2, "max": torch.maximum(a, b),
                    "min": torch.minimum(a, b)}[op]  # fmt: skip
        assert torch.equal(r0, expected), (dtype, op, n)
        assert torch.equal(r0, r1), (dtype, op, n)
    assert "through a shared-memory segment" in plan0


def test_the_notebook_plan_shows_the_shared_memory_choice_and_its_measurement(cluster):
    topo = cluster.topology
    assert topo.shared_memory and set(topo.measured["shm"]) >= {"shared memory", "gloo all_reduce"}
    plain = str(topo.plan(None))
    assert "one host: ranks [0, 1] reduce through a shared-memory segment over shm" in plain
    assert "shared memory " in plain and " ms, gloo all_reduce " in plain
    forced = topo.plan(TopK(0.01), compress_links=COMPRESS_LINKS)
    assert forced.compress and "flat ring [0, 1] over shm, compressed with TopK" in str(forced)


def _measured_choice_on_rank():
    import torch.distributed as dist

    from lepton_nb.collective import allreduce, last_plan, topology

    c = TopK(0.01)
    t = _grad(dist.get_rank())
    mine = t.clone()
    allreduce(t, c)
    plan = last_plan()
    return mine, t, plan.compress, str(plan), topology().measured["shm"]


def test_with_a_compressor_shared_memory_links_take_the_faster_measured_path(cluster):
    (g0, r0, compress, plan0, measured), (g1, r1, compress1, _, measured1) = cluster.run(
        _measured_choice_on_rank
    )
    assert measured == measured1  # the slower rank's figures: one choice everywhere
    assert compress == compress1
    assert compress == (measured[repr(TopK(0.01))] < measured["shared memory"])
    assert torch.equal(r0, r1)
    if compress:
        assert f"compressed with {TopK(0.01)!r} (measured faster than shared memory)" in plan0
    else:
        assert torch.equal(r0, g0 + g1)
        assert "shared memory measured faster than compressing with TopK" in plan0


@pytest.mark.parametrize("op", ["sum", "mean"])
def test_compressed_allreduce_sums_the_payloads_identically_on_every_rank(cluster, op):
    c = TopK(0.01)
    (_, g0, r0, plan0, sent0), (_, g1, r1, _, sent1) = cluster.run(_reduce_on_rank, c, op)  # forced
    assert torch.equal(r0, r1)  # identical on every rank
    expected = torch.from_numpy(c.decompress(c.compress(g0.numpy())))
    expected += torch.from_numpy(c.decompress(c.compress(g1.numpy())))
    if op == "mean":
        expected /= 2
    torch.testing.assert_close(r0, expected)
    assert "compressed with TopK" in plan0
    wire = c.payload_nbytes(N)
    assert sent0 == {(0, 1): wire} and sent1 == {(1, 0): wire}
    assert wire <= N * 4 // 40  # 1% of the values, with their indices


@pytest.mark.parametrize("compressor", [Int8(chunk=256), FP16()], ids=repr)
def test_quantized_allreduce_is_close_to_the_sum(cluster, compressor):
    (_, g0, r0, _, _), (_, g1, r1, _, _) = cluster.run(_reduce_on_rank, compressor)
    assert torch.equal(r0, r1)
    exact = g0 + g1
    bound = 2 * float(max(g0.abs().max(), g1.abs().max())) / 127  # two int8 roundings
    assert float((r0 - exact).abs().max()) <= bound


def _error_feedback_on_rank(steps: int):
    import torch.distributed as dist

    from lepton_nb.collective import allreduce

    ef = ErrorFeedback(TopK(0.1))
    t = torch.empty(N)
    sent = torch.zeros(N)
    g = _grad(dist.get_rank())
    for _ in range(steps):
        t.copy_(g)
        sent += allreduce(t, ef, key="w", compress_links=COMPRESS_LINKS)
    return sent, g, ef.residuals["w"]


def test_error_feedback_delivers_what_it_held_back(cluster):
    # after s steps of the same gradient, sum(sent) = s * sum(g) - sum(residuals)
    steps = 5
    (s0, g0, res0), (s1, g1, res1) = cluster.run(_error_feedback_on_rank, steps)
    assert torch.equal(s0, s1)
    torch.testing.assert_close(
        s0, steps * (g0 + g1) - torch.as_tensor(res0 + res1), atol=1e-4, rtol=1e-5
    )


def _train_ddp(compressor, steps: int, hook: bool = True):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from lepton_nb.collective import comm_hook

    torch.manual_seed(0)
    model = DistributedDataParallel(
        torch.nn.Sequential(torch.nn.Linear(20, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    )
    if hook:
        model.register_comm_hook(None, comm_hook(compressor))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    gen = torch.Generator().manual_seed(dist.get_rank())
    x = torch.randn(256, 20, generator=gen)
    y = x[:, :1] * 2 - x[:, 1:2]
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss))
    return [p.detach().clone() for p in model.parameters()], losses


@pytest.mark.parametrize("compressor", [None, ErrorFeedback(TopK(0.25))], ids=repr)
def test_ddp_comm_hook_trains_with_identical_weights_on_gloo(cluster, compressor):
    (w0, losses0), (w1, _) = cluster.run(_train_ddp, compressor, 30)
    assert all(torch.equal(a, b) for a, b in zip(w0, w1))
    assert losses0[-1] < 0.5 * losses0[0]


def test_ddp_comm_hook_without_compressor_trains_like_plain_ddp(cluster):
    (ours, ours_losses), _ = cluster.run(_train_ddp, None, 30)
    (plain, plain_losses), _ = cluster.run(_train_ddp, None, 30, False)
    # (a + b) / 2 through shared memory is a / 2 + b / 2 through gloo, bit for bit
    assert all(torch.equal(a, b) for a, b in zip(ours, plain))
    assert ours_losses == plain_losses


def test_bad_input_is_refused_before_anything_is_sent():
    with pytest.raises(TypeError, match="needs a torch tensor, got ndarray"):
        collective.allreduce(np.zeros(3))
    with pytest.raises(ValueError, match=r"op must be one of \('sum', 'mean', 'max', 'min'\), got 'prod'"):
        collective.allreduce(torch.zeros(3), op="prod")
    with pytest.raises(ValueError, match="op='max' cannot be applied to compressed payloads"):
        collective.allreduce(torch.zeros(3), TopK(0.5), op="max")
    with pytest.raises(TypeError, match="compressed allreduce needs a floating-point tensor, got torch.int64"):
        collective.allreduce(torch.zeros(3, dtype=torch.int64), TopK(0.5))
    with pytest.raises(TypeError, match=r"op='mean' of an integer tensor \(torch.int32\)"):
        collective.allreduce(torch.zeros(3, dtype=torch.int32), op="mean")
    with pytest.raises(TypeError, match="allreduce reduces tensors of .*; got torch.complex64"):
        collective.allreduce(torch.zeros(3, dtype=torch.complex64))
    with pytest.raises(RuntimeError, match="needs an initialized torch.distributed"):
        collective.allreduce(torch.zeros(3))  # the notebook is not in the group
    with pytest.raises(RuntimeError, match="needs an initialized torch.distributed"):
        collective.allreduce(torch.zeros(3, dtype=torch.int8), op="max")


def _spanning_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ["LEPTON_ENGINE_HOST"] = "node-a" if rank % 2 == 0 else "node-b"
    import torch.distributed as dist

    from lepton_nb import links
    from lepton_nb.collective import allreduce, last_plan

    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=60),
    )
    try:
        t = torch.arange(N, dtype=torch.float32) * (rank + 1)
        exact = allreduce(t.clone(), TopK(1.0))  # keeps every value: exact through all stages
        approx = allreduce(t.clone(), Int8(chunk=512))
        torch.save((exact, approx, str(last_plan()), links.local_bytes()), f"{out}/{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_ranks_on_two_hosts_reduce_hierarchically(tmp_path):
    world, port = 4, free_port()
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=_spanning_worker, args=(r, world, port, str(tmp_path)))
        for r in range(world)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    for p in procs:
        if p.is_alive():
            p.kill()
    missing = [r for r in range(world) if not (tmp_path / f"{r}.pt").exists()]
    assert not missing, f"ranks {missing} did not report within 120 s"
    got = {r: torch.load(tmp_path / f"{r}.pt", weights_only=False) for r in range(world)}
    expected = torch.arange(N, dtype=torch.float32) * 10  # 1 + 2 + 3 + 4
    for rank in range(world):
        exact, approx, plan, sent = got[rank]
        torch.testing.assert_close(exact, expected)
        assert torch.equal(approx, got[0][1])
        assert "hierarchical plan over 2 hosts (node-a: [0, 2]; node-b: [1, 3])" in plan
        assert "between leaders [0, 1] over network, compressed with Int8" in plan
    nbytes = N * 4
    assert got[2][3] == {(2, 0): 2 * nbytes}  # two reductions to its host's leader
    assert got[3][3] == {(3, 1): 2 * nbytes}
    leader0 = got[0][3]
    assert leader0[(0, 2)] == 2 * nbytes  # broadcasts back
    # across hosts only the leaders' payloads: top-k of everything, then int8
    assert leader0[(0, 1)] == TopK(1.0).payload_nbytes(N) + Int8(chunk=512).payload_nbytes(N)
    assert Int8(chunk=512).payload_nbytes(N) < nbytes / 3.9
    assert NOTEBOOK not in {s for s, _ in leader0}


def _bucketed_on_rank(bucket: int):
    import torch.distributed as dist

    from lepton_nb import collective

    saved, collective.BUCKET = collective.BUCKET, bucket
    try:
        g = _grad(dist.get_rank())
        topk = collective.allreduce(g.clone(), TopK(0.05), compress_links=COMPRESS_LINKS)
        half = g.clone().view(100, 100).t()  # not contiguous
        collective.allreduce(half, FP16(), compress_links=COMPRESS_LINKS)
        ef = ErrorFeedback(TopK(0.05))
        collective.allreduce(g.clone(), ef, key="g", compress_links=COMPRESS_LINKS)
        return g, topk, half, sorted(ef.residuals, key=str)
    finally:
        collective.BUCKET = saved


def test_large_tensors_go_bucket_by_bucket(cluster):
    bucket = 1024  # 10 buckets of N, each compressed and exchanged on its own
    (g0, topk0, half0, keys), (g1, topk1, half1, _) = cluster.run(_bucketed_on_rank, bucket)
    assert torch.equal(topk0, topk1) and torch.equal(half0, half1)
    c = TopK(0.05)
    expected = torch.zeros(N)
    for g in (g0, g1):
        for lo in range(0, N, bucket):
            part = g[lo : lo + bucket].numpy()
            expected[lo : lo + bucket] += torch.from_numpy(c.decompress(c.compress(part)))
    torch.testing.assert_close(topk0, expected)
    sixteen = (g0.half().float() + g1.half().float()).view(100, 100).t()
    torch.testing.assert_close(half0, sixteen)
    assert len(keys) == 10  # one error-feedback residual per bucket
