"""Push 1 GB of float64 to a local 2-engine cluster: ours against ipyparallel, side by side.

In one run: ``cluster.push`` (first push, then an unchanged re-push), ipyparallel's
``DirectView.push`` and ``BroadcastView.push`` of the same array, and a
``np.copyto`` of it into a pre-faulted buffer. Rounds are interleaved, each
measurement starts after a second of quiet; the figures are medians. Prints GB/s
and the ratios; appends them to RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _results import record  # noqa: E402

#: Seconds of quiet before each measurement, so that no operation pays for the
#: previous one's memory being freed (applied to ours and the baselines alike).
QUIET_S = 1.0
_settle = None  # a no-op round trip to every engine, set once the cluster is up


def timed(fn) -> float:
    """Time ``fn`` from a settled cluster.

    A 1 GB ipyparallel push leaves cleanup that the next message pays for
    (about 130 ms here, even after a quiet second); a no-op round trip first
    keeps each measurement from paying for the one before it.
    """
    time.sleep(QUIET_S)
    if _settle is not None:
        _settle()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gb", type=float, default=1.0, help="array size in GB (default 1)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("IPYTHONDIR", tempfile.mkdtemp(prefix="lepton-bench-"))
    import lepton_nb

    n = int(args.gb * 1e9 / 8)
    x = np.random.default_rng(0).random(n)
    gb = x.nbytes / 1e9
    dst = np.empty_like(x)
    dst.fill(0)  # fault the pages in, so copyto measures copying
    times: dict[str, list[float]] = {
        k: [] for k in ("copyto", "first", "repush_now", "repush", "direct", "broadcast")
    }
    cold = 0.0
    with lepton_nb.Cluster(n=2, gpus="none", progress=False) as cluster:
        global _settle

        def settle() -> None:
            cluster.transfer.settle()
            cluster.run(int)

        _settle = settle
        direct = cluster.client[:]
        broadcast = cluster.client.broadcast_view()
        cold = timed(
            lambda: cluster.push({"x": x})
        )  # the session's first push: no spare segment yet
        for i in range(args.rounds):
            times["copyto"].append(timed(lambda: np.copyto(dst, x)))
            x[i] += 1.0  # new content: a real first push, not a cache hit
            times["first"].append(timed(lambda: cluster.push({"x": x})))
            start = time.perf_counter()  # right after the first push: no quiet period
            cluster.push({"x": x})
            times["repush_now"].append(time.perf_counter() - start)
            cluster.transfer.settle()  # the spare segment for the next push is ready
            times["repush"].append(timed(lambda: cluster.push({"x": x})))
            times["direct"].append(timed(lambda: direct.push({"x_direct": x}, block=True)))
            direct.execute("del x_direct", block=True)
            times["broadcast"].append(timed(lambda: broadcast.push({"x_bcast": x}, block=True)))
            direct.execute("del x_bcast", block=True)
        check = cluster.execute(f"ok = float(x[{args.rounds - 1}])", gather=["ok"])["ok"]
        assert check == [x[args.rounds - 1]] * 2, check
        info = cluster.cache_info()
    med = {k: statistics.median(v) for k, v in times.items()}
    rate = {k: gb / t for k, t in med.items()}
    lines = [
        f"{gb:.2f} GB float64 to 2 local engines, medians of {args.rounds} interleaved rounds:",
        f"np.copyto {rate['copyto']:.2f} GB/s; cluster.push first {rate['first']:.2f} GB/s "
        f"({rate['first'] / rate['copyto']:.0%} of copyto, goal >= 25%)",
        f"DirectView.push {rate['direct']:.3f} GB/s, BroadcastView.push {rate['broadcast']:.3f} GB/s",
        f"first push {med['direct'] / med['first']:.1f}x DirectView (goal >= 30x), "
        f"{med['broadcast'] / med['first']:.1f}x BroadcastView (goal >= 10x)",
        f"the session's first push (no spare segment yet) {gb / cold:.2f} GB/s, "
        f"{med['direct'] / cold:.1f}x DirectView",
        f"re-push unchanged {med['repush'] * 1e3:.1f} ms: "
        f"{med['direct'] / med['repush']:.0f}x DirectView (goal >= 100x); "
        f"right after a first push, while the spare is prepared: {med['repush_now'] * 1e3:.1f} ms, "
        f"{med['direct'] / med['repush_now']:.0f}x",
        f"cache_info {info}",
    ]
    print("\n".join(lines))
    record("bench_push", " | ".join(lines[:-1]))


if __name__ == "__main__":
    main()
