"""Tasks: ``cluster.map`` over 10,000 tiny tasks against ipyparallel's and Dask's, and the tile
pipeline of example_notebooks/06 against the same pipeline in one process.

On the same 2 ranks (2 engines; a Dask ``LocalCluster`` of 2 single-threaded worker
processes), back to back, ROUNDS rounds interleaved, no pause between them:

- ``cluster.gather(cluster.map(inc, range(10_000)))`` (chunks chosen by lepton_nb);
- ipyparallel ``LoadBalancedView.map_sync`` as a user calls it (chunksize=1), and with the
  same chunk size as lepton_nb's;
- Dask ``client.gather(client.map(inc, range(10_000)))``.

Prints throughput ratios (goals: >= Dask's, >= 0.9x LoadBalancedView) and records them.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _results import record  # noqa: E402

N = 10_000
ROUNDS = 3
KERNELS = """
import numpy as np
from numba import njit

@njit
def blur(a, r):
    h, w = a.shape
    out = np.empty_like(a)
    for i in range(h):
        for j in range(w):
            s = 0.0
            n = 0
            for di in range(-r, r + 1):
                for dj in range(-r, r + 1):
                    ii, jj = i + di, j + dj
                    if 0 <= ii < h and 0 <= jj < w:
                        s += a[ii, jj]
                        n += 1
            out[i, j] = s / n
    return out

@njit
def sobel(a):
    h, w = a.shape
    out = np.zeros_like(a)
    for i in range(1, h - 1):
        for j in range(1, w - 1):
            gx = (a[i-1, j+1] + 2*a[i, j+1] + a[i+1, j+1]) - (a[i-1, j-1] + 2*a[i, j-1] + a[i+1, j-1])
            gy = (a[i+1, j-1] + 2*a[i+1, j] + a[i+1, j+1]) - (a[i-1, j-1] + 2*a[i-1, j] + a[i-1, j+1])
            out[i, j] = (gx * gx + gy * gy) ** 0.5
    return out
"""


def inc(x: int) -> int:
    return x + 1


def process(t: np.ndarray) -> np.ndarray:
    return sobel(blur(t, 2))  # type: ignore[name-defined]  # noqa: F821 - the ranks' KERNELS


def tiles(size: int = 2048, tile: int = 512, halo: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    image = rng.normal(0, 1, (size, size)).astype(np.float32)
    out = []
    for i in range(0, size, tile):
        for j in range(0, size, tile):
            out.append(image[max(i - halo, 0) : i + tile + halo, max(j - halo, 0) : j + tile + halo].copy())
    return out


def main() -> None:
    from dask.distributed import Client, LocalCluster

    import lepton_nb

    expected = [x + 1 for x in range(N)]
    times: dict[str, list[float]] = {"lepton": [], "ipp": [], "ipp_chunked": [], "dask": []}
    with lepton_nb.Cluster(n=2, gpus="none", progress=False) as cluster, LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as dask_cluster, Client(dask_cluster) as dask:
        view = cluster.client.load_balanced_view()
        chunk = max(1, math.ceil(N / (cluster.world_size * 16)))
        runs = {
            "lepton": lambda: cluster.gather(cluster.map(inc, range(N))),
            "ipp": lambda: view.map_sync(inc, range(N)),
            "ipp_chunked": lambda: view.map_sync(inc, range(N), chunksize=chunk),
            "dask": lambda: dask.gather(dask.map(inc, range(N))),
        }
        for _ in range(ROUNDS):
            for name, run in runs.items():
                t = time.perf_counter()
                got = list(run())
                times[name].append(time.perf_counter() - t)
                assert got == expected, name

        # the tile pipeline: tasks on 2 ranks against one process
        pieces = tiles()
        cluster.execute(f"exec({KERNELS!r})")
        exec(KERNELS, globals())
        pipeline: dict[str, list[float]] = {"tasks": [], "one_process": []}
        process(pieces[0])  # numba compiles on first use: here, and on each rank below
        cluster.gather(cluster.map(process, pieces[:2], chunksize=1))
        for _ in range(ROUNDS):
            t = time.perf_counter()
            ours = cluster.gather(cluster.map(process, pieces))
            pipeline["tasks"].append(time.perf_counter() - t)
            t = time.perf_counter()
            alone = [process(p) for p in pieces]
            pipeline["one_process"].append(time.perf_counter() - t)
            assert all(np.allclose(a, b) for a, b in zip(ours, alone))

    med = {k: statistics.median(v) for k, v in times.items()}
    rate = {k: N / v for k, v in med.items()}
    vs_dask = rate["lepton"] / rate["dask"]
    vs_ipp = rate["lepton"] / rate["ipp"]
    vs_chunked = rate["lepton"] / rate["ipp_chunked"]
    speedup = statistics.median(pipeline["one_process"]) / statistics.median(pipeline["tasks"])
    print(f"map of {N} tiny tasks, tasks/s (median of {ROUNDS}): "
          + ", ".join(f"{k} {v:,.0f}" for k, v in rate.items()))  # fmt: skip
    print(f"lepton/dask {vs_dask:.2f}x (goal >= 1), lepton/LoadBalancedView {vs_ipp:.2f}x "
          f"(chunksize=1; goal >= 0.9), lepton/LoadBalancedView with chunksize={chunk} "
          f"{vs_chunked:.2f}x; 16-tile pipeline on 2 ranks vs one process {speedup:.2f}x")  # fmt: skip
    record(
        "tasks",
        f"map of {N:,} tiny tasks on 2 ranks: {vs_dask:.2f}x Dask's Client.map throughput (goal >= 1), "
        f"{vs_ipp:.2f}x LoadBalancedView.map (chunksize=1; goal >= 0.9), {vs_chunked:.2f}x "
        f"LoadBalancedView.map with lepton_nb's chunksize={chunk}; the 16-tile blur+Sobel pipeline "
        f"on 2 ranks runs {speedup:.2f}x the speed of one process",
    )


if __name__ == "__main__":
    main()
