"""Push 1 GB of float64 to a local 2-engine cluster: ours against ipyparallel, side by side.

Measured first, the way a notebook loop works: each round makes a fresh copy of
the array with one element changed, pushes it with ``cluster.push``, copies it
with ``np.copyto`` into a pre-faulted buffer, then pushes it with ipyparallel's
``DirectView.push``; no pause and no warm-up between rounds. Round 0 is the
session's first push (no spare segment, nothing imported on the engines yet).

Then, labelled as such, the earlier quiet-second figures: each measurement after a
second of quiet and a no-op round trip, with an unchanged re-push and
``BroadcastView.push``. Prints medians, spreads and ratios; appends them to RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _results import record  # noqa: E402

#: Seconds of quiet before each quiet-second measurement, so that no operation pays for the
#: previous one's memory being freed (applied to ours and the baselines alike).
QUIET_S = 1.0


def clock(fn: Callable[[], object]) -> float:
    """Seconds ``fn`` takes, started at once."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def spread(values: list[float]) -> str:
    """``median [min, max]`` of ratios."""
    return f"{statistics.median(values):.1f}x [{min(values):.1f}, {max(values):.1f}]"


def back_to_back(cluster, x: np.ndarray, rounds: int) -> dict[str, list[float]]:
    """The notebook loop: fresh copy, cluster.push, np.copyto, DirectView.push; no pauses."""
    direct = cluster.client[:]
    dst = np.empty_like(x)
    dst.fill(0)  # fault the pages in, so copyto measures copying
    times: dict[str, list[float]] = {"push": [], "direct": [], "copyto": []}
    for i in range(rounds + 1):  # round 0: the session's first push
        x = x.copy()
        x[i] += 1.0  # new content each round
        start = time.perf_counter()
        cluster.push({"x": x})
        pushed = time.perf_counter()
        np.copyto(dst, x)
        copied = time.perf_counter()
        direct.push({"x_direct": x}, block=True)  # then straight on to the next round
        times["push"].append(pushed - start)
        times["copyto"].append(copied - pushed)
        times["direct"].append(time.perf_counter() - copied)
    check = cluster.execute(f"ok = float(x[{rounds}])", gather=["ok"])["ok"]
    assert check == [x[rounds]] * 2, check
    direct.execute("del x_direct", block=True)
    return times


def quiet(cluster, x: np.ndarray, rounds: int) -> dict[str, list[float]]:
    """Each measurement after a second of quiet and a no-op round trip (a flattering condition)."""

    def timed(fn: Callable[[], object]) -> float:
        time.sleep(QUIET_S)
        cluster.transfer.settle()
        cluster.run(int)
        return clock(fn)

    direct = cluster.client[:]
    broadcast = cluster.client.broadcast_view()
    times: dict[str, list[float]] = {k: [] for k in ("first", "repush", "direct", "broadcast")}
    for i in range(rounds):
        x[i] += 2.0  # new content: a real first push, not a cache hit
        times["first"].append(timed(lambda: cluster.push({"x": x})))
        times["repush"].append(timed(lambda: cluster.push({"x": x})))
        times["direct"].append(timed(lambda: direct.push({"x_direct": x}, block=True)))
        direct.execute("del x_direct", block=True)
        times["broadcast"].append(timed(lambda: broadcast.push({"x_bcast": x}, block=True)))
        direct.execute("del x_bcast", block=True)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gb", type=float, default=1.0, help="array size in GB (default 1)")
    parser.add_argument("--rounds", type=int, default=8, help="back-to-back rounds (default 8)")
    parser.add_argument("--quiet-rounds", type=int, default=3, help="quiet-second rounds (default 3)")
    parser.add_argument("--no-record", action="store_true", help="print only; leave RESULTS.md")
    args = parser.parse_args()
    os.environ.setdefault("IPYTHONDIR", tempfile.mkdtemp(prefix="lepton-bench-"))
    import lepton_nb

    x = np.random.default_rng(0).random(int(args.gb * 1e9 / 8))
    gb = x.nbytes / 1e9
    with lepton_nb.Cluster(n=2, gpus="none", progress=False) as cluster:
        b2b = back_to_back(cluster, x, args.rounds)
        calm = quiet(cluster, x, args.quiet_rounds)
        info = cluster.cache_info()
    push, direct, copyto = (b2b[k][1:] for k in ("push", "direct", "copyto"))
    first, first_direct = b2b["push"][0], b2b["direct"][0]
    ratio = [d / p for d, p in zip(direct, push)]
    share = [c / p for c, p in zip(copyto, push)]
    med = {k: statistics.median(v) for k, v in calm.items()}
    lines = [
        f"{gb:.2f} GB float64 to 2 local engines; back to back ({args.rounds} rounds, a fresh copy "
        f"each, DirectView.push in between, no pauses): cluster.push {push_ms(push)}, "
        f"DirectView.push {push_ms(direct)}, np.copyto {push_ms(copyto)}",
        f"back to back: {spread(ratio)} DirectView (goal >= 30x), "
        f"{statistics.median(share):.0%} [{min(share):.0%}, {max(share):.0%}] of np.copyto "
        f"bandwidth (goal >= 50%)",
        f"the session's first push {first * 1e3:.0f} ms: {first_direct / first:.1f}x the "
        f"session's first DirectView.push ({first_direct * 1e3:.0f} ms), "
        f"{statistics.median(direct) / first:.1f}x the back-to-back median (goal >= 10x)",
        f"quiet-second figures (a second of quiet and a no-op round trip before each, "
        f"{args.quiet_rounds} rounds): first push {med['direct'] / med['first']:.1f}x DirectView, "
        f"{med['broadcast'] / med['first']:.1f}x BroadcastView; re-push unchanged "
        f"{med['repush'] * 1e3:.1f} ms, {med['direct'] / med['repush']:.0f}x DirectView",
        f"cache_info {info}",
    ]
    print("\n".join(lines))
    if not args.no_record:
        record("bench_push", " | ".join(lines[:-1]))


def push_ms(times: list[float]) -> str:
    """``median ms [min, max]``."""
    return f"{statistics.median(times) * 1e3:.0f} ms [{min(times) * 1e3:.0f}, {max(times) * 1e3:.0f}]"


if __name__ == "__main__":
    main()
