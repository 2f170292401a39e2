"""Time to 97% validation accuracy over a 1 Gbit/s link: the top-k Trainer against torch DDP.

Two ranks, one on each node of the multi-host rig (tests/hosts/rig.py: two network
namespaces whose links are shaped by ``tc tbf`` to 1 Gbit/s; root only), started over SSH.
The model has 10.5M parameters: the digits CNN of example_notebooks/02 with a fully connected
layer 20,000 wide. Three runs, each on the same data (scikit-learn's bundled digits, 80/20
split), seed, initial weights, per-rank batches (``lepton_nb.train.data.shard``, ``--batch`` examples
per rank, 32 by default) and optimizer (SGD, lr 0.02, momentum 0.9):

- ``Trainer(compression="topk:0.01")`` (error feedback with DGC momentum correction);
- torch ``DistributedDataParallel``, uncompressed;
- DDP with torch's own ``fp16_compress_hook`` (the honest 16-bit baseline).

Each run's clock counts its epochs only (training and validation, as its ranks see them),
not set-up. Reports the time at which each first reaches 97% validation accuracy, the
ratios (goals: top-k >= 5x sooner than uncompressed DDP and >= 2x sooner than fp16 DDP) and
the final accuracies (goal: top-k within 1 point of uncompressed), and records them.

    python benchmarks/bench_train_link.py [--epochs 12] [--rate 1gbit] [--batch 32]

Also reports what one step is made of, measured on the ranks before the runs: forward and
backward, and averaging the gradient over the link each way.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import Any

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
from _results import record  # noqa: E402
from bench_train import digits  # noqa: E402 - the same split as bench_train.py

from tests.hosts.rig import Rig, RigUnavailable  # noqa: E402

TARGET = 0.97
GOALS = {"vs_ddp": 5.0, "vs_fp16": 2.0, "accuracy_points": 1.0}
WIDTH = 20_000
BATCH = 32  # per rank
LR = 0.02
SEED = 0


def wide_cnn() -> torch.nn.Sequential:
    torch.manual_seed(SEED)
    return torch.nn.Sequential(
        torch.nn.Unflatten(1, (1, 8, 8)),
        torch.nn.Conv2d(1, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(32 * 4 * 4, WIDTH),
        torch.nn.ReLU(),
        torch.nn.Linear(WIDTH, 10),
    )


def ddp_epochs(
    model: Any, train: Any, val: Any, epochs: int, fp16: bool, batch: int, lr: float, seed: int
) -> list[tuple[float, float]]:
    """On each rank: DDP training, the Trainer's batches; (seconds so far, val accuracy) per epoch.

    Sent to the ranks by value: it uses only its arguments and what it imports.
    """
    import time

    import torch
    import torch.distributed as dist
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
    from torch.nn.parallel import DistributedDataParallel

    from lepton_nb.train import data

    torch.set_num_threads(1)
    rank, world = dist.get_rank(), dist.get_world_size()
    X, y = (torch.from_numpy(a) for a in train)
    Xv, yv = (torch.from_numpy(a) for a in val)
    ddp = DistributedDataParallel(model)
    if fp16:
        ddp.register_comm_hook(dist.group.WORLD, default_hooks.fp16_compress_hook)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=lr, momentum=0.9)
    dist.barrier()
    history, spent = [], 0.0
    for epoch in range(epochs):
        began = time.perf_counter()
        ddp.train()
        mine = data.shard(len(X), rank, world, epoch, seed)
        for start in range(0, len(mine), batch):
            rows = mine[start : start + batch]
            loss = torch.nn.functional.cross_entropy(ddp(X[rows]), y[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        ddp.eval()
        with torch.no_grad():
            accuracy = float((model(Xv).argmax(1) == yv).float().mean())
        dist.barrier()
        spent += time.perf_counter() - began
        history.append((spent, accuracy))
    return history


def one_thread() -> None:
    """On each rank: one thread for torch and for numba (the compression kernels).

    The rig's two nodes share this machine's two cores, and each reports both, so each rank
    would run two threads on its one core: numba's OpenMP threads then wait on each other
    (a top-1% compression of 10.5M values took 170-235 ms on a rank so, 13-16 ms alone).
    """
    import numba
    import torch

    torch.set_num_threads(1)
    numba.set_num_threads(1)


def step_costs(model: Any, train: Any, batch: int, rounds: int) -> dict[str, float]:
    """On each rank: the medians, in seconds, of what one training step is made of.

    ``compute``: forward and backward of one batch with no communication; ``dense``, ``fp16``
    and ``topk``: averaging a gradient of the model's size across the link with gloo's
    all_reduce (what DDP sends), with fp16 values (what fp16_compress_hook sends) and with
    ``lepton_nb.collective.allreduce`` and the Trainer's top-1% compressor (compression
    included). Sent to the ranks by value.
    """
    import statistics
    import time

    import numba
    import torch
    import torch.distributed as dist

    from lepton_nb.collective import allreduce
    from lepton_nb.train import options

    torch.set_num_threads(1)
    numba.set_num_threads(1)  # as one_thread() does
    X, y = (torch.from_numpy(a) for a in train)
    xb, yb = X[:batch], y[:batch].long()
    n = sum(p.numel() for p in model.parameters())
    grads = torch.randn(n, generator=torch.Generator().manual_seed(dist.get_rank()))
    half = grads.half()
    topk = options.compressor("topk:0.01", "sgd")

    def compute() -> None:
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(xb), yb).backward()

    ops = {
        "compute": compute,
        "dense": lambda: dist.all_reduce(grads),
        "fp16": lambda: dist.all_reduce(half),
        "topk": lambda: allreduce(grads, topk, op="mean", key="probe"),
    }
    times: dict[str, list[float]] = {k: [] for k in ops}
    for _ in range(rounds + 1):  # the first round warms up (numba compiles, buffers grow)
        for name, op in ops.items():
            dist.barrier()
            began = time.perf_counter()
            op()
            times[name].append(time.perf_counter() - began)
    return {k: statistics.median(v[1:]) for k, v in times.items()}


def first_at(history: list[tuple[float, float]]) -> float:
    """Seconds until the first epoch at or above TARGET (inf if never)."""
    return next((t for t, acc in history if acc >= TARGET), float("inf"))


def _epochs_to(history: list[tuple[float, float]]) -> str:
    return next((str(i + 1) for i, (_, acc) in enumerate(history) if acc >= TARGET), "never")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--rate", default="1gbit", help="tc rate of each node's link")
    parser.add_argument("--batch", type=int, default=BATCH, help=f"examples per rank per step (default {BATCH})")
    args = parser.parse_args()
    os.environ.setdefault("IPYTHONDIR", tempfile.mkdtemp(prefix="lepton-bench-"))
    import lepton_nb

    train, val = digits()
    rig = Rig()
    try:
        rig.up()
    except RigUnavailable as e:
        print(f"bench_train_link needs the multi-host rig: {e}")
        return 2
    runs: dict[str, list[tuple[float, float]]] = {}
    try:
        rig.shape(args.rate)
        hosts = {n.name: 1 for n in rig.nodes}
        with lepton_nb.Cluster(launcher="ssh", hosts=hosts, ssh_args=rig.ssh_args, gpus="none",
                               engine_timeout=60.0, progress=False) as cluster:  # fmt: skip
            assert len({p["host"] for p in cluster.placement}) == 2, cluster.placement
            cluster.run(one_thread)
            costs = cluster.run(step_costs, wide_cnn(), train, args.batch, 5)
            cost = {k: max(c[k] for c in costs) for k in costs[0]}  # a step waits for the slower rank
            print("one step:", {k: f"{v * 1e3:.0f} ms" for k, v in cost.items()}, flush=True)
            trainer = lepton_nb.Trainer(cluster, compression="topk:0.01", seed=SEED, progress=False)
            trainer.fit(wide_cnn(), train, batch_size=args.batch, epochs=args.epochs, val_dataset=val, lr=LR)
            spent, runs["topk"] = 0.0, []
            for entry in trainer.history:
                spent += entry["seconds"]
                runs["topk"].append((spent, entry["val_accuracy"]))
            print("Trainer topk:0.01:", [f"{t:.1f}s {a:.3f}" for t, a in runs["topk"]], flush=True)
            for name, fp16 in (("ddp", False), ("ddp_fp16", True)):
                runs[name] = cluster.run(ddp_epochs, wide_cnn(), train, val, args.epochs, fp16, args.batch, LR, SEED)[0]
                print(f"{name}:", [f"{t:.1f}s {a:.3f}" for t, a in runs[name]], flush=True)
    finally:
        rig.down()
    at = {name: first_at(h) for name, h in runs.items()}
    final = {name: h[-1][1] for name, h in runs.items()}
    vs_ddp, vs_fp16 = at["ddp"] / at["topk"], at["ddp_fp16"] / at["topk"]
    gap = (final["ddp"] - final["topk"]) * 100
    line = (
        f"time to {TARGET:.0%} validation accuracy, 10.5M-parameter digits CNN, 2 ranks on two hosts "
        f"over {args.rate}, {args.batch} examples per rank per step: "
        f"Trainer(compression='topk:0.01') {at['topk']:.1f} s, DDP {at['ddp']:.1f} s, "
        f"DDP + fp16_compress_hook {at['ddp_fp16']:.1f} s: top-k {vs_ddp:.1f}x sooner than DDP "
        f"(goal >= {GOALS['vs_ddp']:g}x), {vs_fp16:.1f}x sooner than fp16 DDP (goal >= {GOALS['vs_fp16']:g}x); "
        f"final accuracy after {args.epochs} epochs: top-k {final['topk']:.2%}, DDP {final['ddp']:.2%}, "
        f"fp16 {final['ddp_fp16']:.2%} (top-k {gap:+.2f} points below DDP; goal within {GOALS['accuracy_points']:g}); "
        f"epochs to {TARGET:.0%}: " + ", ".join(f"{k} {_epochs_to(h)}" for k, h in runs.items()) + "; "
        f"one step of {args.batch} per rank (medians, slower rank): forward+backward {cost['compute'] * 1e3:.0f} ms, "
        f"averaging the gradient: gloo {cost['dense'] * 1e3:.0f} ms, fp16 {cost['fp16'] * 1e3:.0f} ms, "
        f"top-k {cost['topk'] * 1e3:.0f} ms (compression included)"
    )
    print(line)
    record("bench_train_link", line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
