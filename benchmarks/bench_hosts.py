"""Multi-host figures on the two-node rig, links shaped to 1 Gbit/s: ours against ipyparallel.

Three ratios, each measured side by side in one run (tests/hosts/rig.py brings the rig up
and takes it down again, as root):

1. a trivial ``%%lepton_distributed`` cell's round trip on 2 Slurm nodes against
   ``DirectView.execute`` on the same engines (goal <= 1.3), rounds interleaved;
2. a push of 1 GB of float32 (a sum of sines plus noise) to 2 hosts x 2 ranks against
   ``DirectView.push`` to the same 4 engines (goal >= 4x), rounds interleaved, each round
   a fresh copy with one element changed, back to back;
3. time to a usable cluster (engines registered and, for ours, the process group formed)
   against ipyparallel's own ``Cluster(engines="slurm")`` start plus ``wait_for_engines``
   (goal <= 1.5), alternating.

Prints medians and ratios; appends them to RESULTS.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
from _results import record  # noqa: E402

from tests.hosts.rig import Rig, RigUnavailable  # noqa: E402

CODE = "x = rank + 1"
GOALS = {"roundtrip": 1.3, "push": 4.0, "start": 1.5}


def smooth(n: int, seed: int, noise: float) -> np.ndarray:
    """A sum of sines plus Gaussian noise, float32."""
    t = np.linspace(0, 400 * np.pi, n, dtype=np.float64)
    rng = np.random.default_rng(seed)
    return (np.sin(t) + 0.5 * np.sin(3.1 * t + 1) + noise * rng.standard_normal(n)).astype(
        np.float32
    )


def roundtrip(rounds: int) -> tuple[float, float]:
    from IPython.testing.globalipapp import start_ipython

    import lepton_nb

    ip = start_ipython()
    ip.run_line_magic("load_ext", "lepton_nb")
    with lepton_nb.Cluster(launcher="slurm", nodes=2, gpus="none", progress=False) as cluster:
        view = cluster.client[:]
        view.block = True
        ours, theirs = [], []
        for _ in range(rounds):
            t = time.perf_counter()
            ip.run_cell_magic("lepton_distributed", "", CODE)
            ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            view.execute(CODE)
            theirs.append(time.perf_counter() - t)
    return statistics.median(ours), statistics.median(theirs)


def push(gb: float, rounds: int, noise: float) -> tuple[float, float, float]:
    import lepton_nb

    n = int(gb * 1e9 / 4)
    base = smooth(n, 0, noise)
    with lepton_nb.Cluster(launcher="slurm", nodes=2, ranks_per_node=2, gpus="none",
                           progress=False) as cluster:  # fmt: skip
        view = cluster.client[list(cluster.engines().values())]
        view.block = True
        ours, theirs = [], []
        for i in range(rounds):  # back to back: no pause, the baseline push in between
            arr = base.copy()
            arr[i] += 1.0
            t = time.perf_counter()
            cluster.push({"x": arr})
            ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            view.push({"x": arr})
            theirs.append(time.perf_counter() - t)
            del arr
        sent = cluster.cache_info()["bytes_sent"] / rounds / len(cluster.ranks.hosts())
    return statistics.median(ours), statistics.median(theirs), sent / (n * 4)


def start(rig: Rig, rounds: int) -> tuple[float, float]:
    import ipyparallel as ipp

    import lepton_nb

    ours, theirs = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        c = lepton_nb.Cluster(launcher="slurm", nodes=2, gpus="none", progress=False).start()
        ours.append(time.perf_counter() - t)
        c.stop()
        t = time.perf_counter()
        cluster = ipp.Cluster(engines="slurm", n=2, controller_ip=rig.controller_addr,
                              controller_location=rig.controller_addr, log_level=logging.ERROR)  # fmt: skip
        cluster.start_cluster_sync()
        client = cluster.connect_client_sync()
        client.wait_for_engines(2, timeout=120)
        theirs.append(time.perf_counter() - t)
        client.close()
        cluster.stop_cluster_sync()
    return statistics.median(ours), statistics.median(theirs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gb", type=float, default=1.0, help="push size in GB (default 1)")
    parser.add_argument("--noise", type=float, default=1e-3, help="noise amplitude (default 1e-3)")
    parser.add_argument("--rounds", type=int, default=50, help="round trips (default 50)")
    parser.add_argument("--push-rounds", type=int, default=3)
    parser.add_argument("--start-rounds", type=int, default=3)
    parser.add_argument("--rate", default="1gbit", help="tc rate of each node's link")
    args = parser.parse_args()
    os.environ.setdefault("IPYTHONDIR", tempfile.mkdtemp(prefix="lepton-bench-"))
    rig = Rig()
    try:
        rig.up()
    except RigUnavailable as e:
        print(f"bench_hosts needs the multi-host rig: {e}")
        return 2
    try:
        rig.shape(args.rate)
        ours, theirs = roundtrip(args.rounds)
        rt = (f"round trip on 2 Slurm nodes: %%lepton_distributed {ours * 1e3:.1f} ms, "
              f"DirectView.execute {theirs * 1e3:.1f} ms, ratio {ours / theirs:.2f} "
              f"(goal <= {GOALS['roundtrip']}; {args.rounds} rounds interleaved)")  # fmt: skip
        print(rt, flush=True)
        ours, theirs, ratio_sent = push(args.gb, args.push_rounds, args.noise)
        pu = (f"push of {args.gb:g} GB float32 (sines + {args.noise:g} noise) to 2 hosts x 2 ranks "
              f"over {args.rate}: cluster.push {ours:.2f} s, DirectView.push {theirs:.2f} s, "
              f"{theirs / ours:.1f}x (goal >= {GOALS['push']}x; each host's link carried one copy, "
              f"compressed to {ratio_sent:.2f} of the array; {args.push_rounds} rounds back to back)")  # fmt: skip
        print(pu, flush=True)
        ours, theirs = start(rig, args.start_rounds)
        st = (f"time to a usable cluster, 2 Slurm nodes: ours (registered + group formed) "
              f"{ours:.1f} s, ipyparallel Cluster(engines='slurm') + wait_for_engines {theirs:.1f} s, "
              f"ratio {ours / theirs:.2f} (goal <= {GOALS['start']}; {args.start_rounds} rounds "
              "alternating)")  # fmt: skip
        print(st, flush=True)
    finally:
        rig.down()
    for line in (rt, pu, st):
        record("bench_hosts", line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
