"""allreduce and comm_hook on real gloo process groups: the session cluster (one host)
and four spawned processes that report two hosts (the hierarchical plan)."""

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

N = 10_000


def _grad(rank: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(rank).standard_normal(N).astype(np.float32))


def _reduce_on_rank(compressor, op: str = "sum"):
    import torch.distributed as dist

    from lepton_nb import links
    from lepton_nb.collective import allreduce, last_plan

    before = links.local_bytes()
    t = _grad(dist.get_rank())
    mine = t.clone()
    out = allreduce(t, compressor, op)
    after = links.local_bytes()
    sent = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
    return out is t, mine, t, str(last_plan()), sent


def test_plain_allreduce_is_the_exact_sum_and_counts_ring_bytes(cluster):
    (same0, g0, r0, plan0, sent0), (_, g1, r1, _, sent1) = cluster.run(_reduce_on_rank, None)
    assert same0  # in place
    torch.testing.assert_close(r0, g0 + g1)
    assert torch.equal(r0, r1)
    assert "flat ring [0, 1] over shm, uncompressed (no compressor)" in plan0
    assert sent0 == {(0, 1): N * 4} and sent1 == {(1, 0): N * 4}  # 2(W-1)/W of 40 kB


@pytest.mark.parametrize("op", ["sum", "mean"])
def test_compressed_allreduce_sums_the_payloads_identically_on_every_rank(cluster, op):
    c = TopK(0.01)
    (_, g0, r0, plan0, sent0), (_, g1, r1, _, sent1) = cluster.run(_reduce_on_rank, c, op)
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
        sent += allreduce(t, ef, key="w")
    return sent, g, ef.residuals["w"]


def test_error_feedback_delivers_what_it_held_back(cluster):
    # after s steps of the same gradient, sum(sent) = s * sum(g) - sum(residuals)
    steps = 5
    (s0, g0, res0), (s1, g1, res1) = cluster.run(_error_feedback_on_rank, steps)
    assert torch.equal(s0, s1)
    torch.testing.assert_close(
        s0, steps * (g0 + g1) - torch.as_tensor(res0 + res1), atol=1e-4, rtol=1e-5
    )


def _train_ddp(compressor, steps: int):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from lepton_nb.collective import comm_hook

    torch.manual_seed(0)
    model = DistributedDataParallel(
        torch.nn.Sequential(torch.nn.Linear(20, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    )
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


def test_bad_input_is_refused_before_anything_is_sent():
    with pytest.raises(TypeError, match="needs a torch tensor, got ndarray"):
        collective.allreduce(np.zeros(3))
    with pytest.raises(ValueError, match=r"op must be one of \('sum', 'mean'\), got 'max'"):
        collective.allreduce(torch.zeros(3), op="max")
    with pytest.raises(TypeError, match="floating-point tensor, got torch.int64"):
        collective.allreduce(torch.zeros(3, dtype=torch.int64))
    with pytest.raises(RuntimeError, match="needs an initialized torch.distributed"):
        collective.allreduce(torch.zeros(3))  # the notebook is not in the group


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
        topk = collective.allreduce(g.clone(), TopK(0.05))
        half = g.clone().view(100, 100).t()  # not contiguous
        collective.allreduce(half, FP16())
        ef = ErrorFeedback(TopK(0.05))
        collective.allreduce(g.clone(), ef, key="g")
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
