"""All-reduce of 100 MB of float32 across 2 ranks: gloo against ours with top-1% + error feedback,
and, on one host, against ours through shared memory.

Two worker processes (this script with ``--worker``) join a gloo process group and
time, in interleaved rounds, ``dist.all_reduce(t)`` against
``allreduce(t, ErrorFeedback(TopK(0.01)))``, which includes compressing and
decompressing (forced onto the link with ``compress_links``). Every round starts
from a fresh gradient after a barrier; a round's time is the slower rank's; the
figures are medians. Two settings:

- loopback (goal: ours >= 2x faster than gloo). Here the two ranks share a host, so
  the same rounds also time the dense ``allreduce(t)`` through the shared-memory
  segment (goal >= 2x gloo at 100 MB), and then 64 KB tensors: bursts of
  back-to-back calls, as a training loop makes them, gloo and ours interleaved
  (goal >= 10x gloo);
- two network namespaces joined by a veth pair shaped by ``tc tbf`` to 1 Gbit/s on
  both ends (goal >= 25x; also against DDP with torch's fp16_compress_hook). That needs
  root; where it is not permitted the script says so and runs loopback only. The namespaces are deleted on the way out.

Prints medians, ratios (with their spread over the rounds), bytes per rank and the
plans; appends one line per setting to RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta

sys.path.insert(0, os.path.dirname(__file__))
from _netns import NetnsUnavailable, VethPair, remove_stale  # noqa: E402
from _results import record  # noqa: E402

WORLD = 2
INIT_TIMEOUT_S = 120  # init_process_group, and each collective after it
GOALS = {"loopback": 2.0, "netns": 25.0}
DENSE_GOALS = {"100 MB": 2.0, "64 KB": 10.0}  # shared memory against gloo, on one host
SMALL_BYTES = 64 * 1024
BURST = 50  # back-to-back 64 KB calls per round


# -- worker (one per rank) -----------------------------------------------------------------


def _tx_bytes(ifname: str | None) -> int:
    """Bytes this namespace's ``ifname`` has sent (0 when not measured)."""
    if ifname is None:
        return 0
    with open(f"/sys/class/net/{ifname}/statistics/tx_bytes") as f:
        return int(f.read())


def worker(args: argparse.Namespace) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    rank = args.rank
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://{args.addr}:{args.port}",
        rank=rank,
        world_size=WORLD,
        timeout=timedelta(seconds=INIT_TIMEOUT_S),
    )
    from lepton_nb.collective import allreduce, last_plan
    from lepton_nb.compress import ErrorFeedback, TopK
    from lepton_nb.links import counter
    from lepton_nb.topology import COMPRESS_LINKS

    ef = ErrorFeedback(TopK(0.01))

    n = int(args.mb * 1e6 / 4)
    gen = torch.Generator().manual_seed(1000 + rank)
    grads = [torch.randn(n, generator=gen) for _ in range(2)]
    t = torch.empty(n)
    measure_tx = args.tx_ifname  # None on loopback: lo counts everyone's traffic

    def gloo(x):
        dist.all_reduce(x)

    def ours(x):
        allreduce(x, ef, compress_links=COMPRESS_LINKS)  # compressed, whatever was measured

    def dense(x):
        allreduce(x)

    def counted() -> int:
        return counter.total()

    def timed(op, grad) -> tuple[float, int, int]:
        """Time ``op`` on a fresh gradient.

        Returns the slower rank's time, and the most bytes a rank sent: measured on
        its interface (netns only) and counted by ``lepton_nb.links`` (ours only).
        """
        t.copy_(grad)
        dist.barrier()
        tx, sent = _tx_bytes(measure_tx), counted()
        start = time.perf_counter()
        op(t)
        elapsed = time.perf_counter() - start
        tx, sent = _tx_bytes(measure_tx) - tx, counted() - sent
        # every rank must hold the same result
        s = t.double().sum().item()
        m = torch.tensor([elapsed, float(tx), float(sent), s, -s], dtype=torch.float64)
        dist.all_reduce(m, op=dist.ReduceOp.MAX)
        if m[3].item() != -m[4].item():
            raise AssertionError(f"ranks disagree on the result: sums {m[3]} and {-m[4]}")
        return m[0].item(), int(m[1].item()), int(m[2].item())

    ops = {"gloo": gloo, "ours": ours}
    if args.mode == "loopback":
        ops["dense"] = dense
    else:  # the honest 16-bit baseline: torch DDP's own fp16_compress_hook on the same link
        ops["fp16"] = _ddp_fp16(torch, dist, n)
    # warm-up, not counted: gloo's connections, numba's compilation
    timed(gloo, grads[0])
    timed(ours, grads[0])
    timed(ours, grads[1])
    if "fp16" in ops:
        timed(ops["fp16"], grads[0])
    if "dense" in ops:
        timed(dense, grads[0])
    times: dict[str, list[float]] = {k: [] for k in ops}
    txs: dict[str, list[int]] = {k: [] for k in ops}
    sent: dict[str, list[int]] = {k: [] for k in ops}
    for i in range(args.rounds):
        order = list(ops) if i % 2 == 0 else list(reversed(ops))
        for name in order:
            elapsed, tx, nbytes = timed(ops[name], grads[i % 2])
            times[name].append(elapsed)
            txs[name].append(tx)
            sent[name].append(nbytes)
        if rank == 0:
            line = ", ".join(f"{k} {times[k][-1] * 1e3:.0f} ms" for k in ops)
            print(f"  [{args.mode}] round {i + 1}/{args.rounds}: {line}", flush=True)
    result: dict = {"times": times, "tx": txs if measure_tx else None}
    result["nbytes"] = t.nbytes
    result["counted"] = statistics.median(sent["ours"])
    result["payload_nbytes"] = ef.payload_nbytes(n)
    timed(ours, grads[0])
    result["plan"] = str(last_plan())
    if "dense" in ops:
        allreduce(t.clone(), ef)  # what the measured choice takes with this compressor
        result["chosen_plan"] = str(last_plan())
        timed(dense, grads[0])
        result["dense_plan"] = str(last_plan())
        result["small"] = _small_rounds(args, rank, torch, dist, dense)
    dist.barrier()
    dist.destroy_process_group()
    if rank == 0:
        with open(args.out, "w") as f:
            json.dump(result, f)


def _ddp_fp16(torch, dist, n: int):  # noqa: ANN001, ANN202 - the worker's torch modules
    """An op that all-reduces ``x`` through torch DDP with ``fp16_compress_hook``.

    DDP over one parameter of ``n`` floats in one bucket; ``(p * x).sum()`` backward makes
    the gradient ``x``, which DDP's hook casts to fp16, all-reduces (gloo) and casts back,
    averaged; the result is copied into ``x``. The multiply and sum (the same on every
    round) are counted in its time.
    """
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
    from torch.nn.parallel import DistributedDataParallel

    class Grad(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(n))

        def forward(self, x):  # noqa: ANN001, ANN202
            return (self.p * x).sum()

    module = Grad()
    ddp = DistributedDataParallel(module, bucket_cap_mb=int(n * 4 / 2**20) + 1)
    ddp.register_comm_hook(dist.group.WORLD, default_hooks.fp16_compress_hook)

    def fp16(x):  # noqa: ANN001, ANN202
        module.p.grad = None
        ddp(x).backward()
        x.copy_(module.p.grad)

    return fp16


def _small_rounds(args, rank, torch, dist, dense) -> dict:
    """64 KB: rounds of BURST back-to-back calls, gloo and ours interleaved; per-call seconds."""
    n = SMALL_BYTES // 4
    t = torch.randn(n, generator=torch.Generator().manual_seed(rank))
    ops = {"gloo": lambda x: dist.all_reduce(x), "dense": dense}
    for op in ops.values():  # warm-up
        for _ in range(BURST):
            op(t)
    times: dict[str, list[float]] = {k: [] for k in ops}
    for i in range(args.small_rounds):
        for name in list(ops) if i % 2 == 0 else list(reversed(ops)):
            t.normal_()
            dist.barrier()
            start = time.perf_counter()
            for _ in range(BURST):
                ops[name](t)
            elapsed = (time.perf_counter() - start) / BURST
            m = torch.tensor([elapsed], dtype=torch.float64)
            dist.all_reduce(m, op=dist.ReduceOp.MAX)
            times[name].append(m.item())
    return times


# -- driver --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_pair(
    mode: str,
    rounds: int,
    mb: float,
    addr: str,
    port: int,
    ifnames: tuple[str, str],
    prefixes: tuple[list[str], list[str]] = ([], []),
    hosts: tuple[str, str] | None = None,
    timeout: float = 300,
    small_rounds: int = 0,
) -> dict:
    """Run both ranks; return rank 0's results. Kills both and shows their stderr on failure."""
    tmp = tempfile.mkdtemp(prefix="lepton-bench-allreduce-")
    out = os.path.join(tmp, "result.json")
    procs: list[subprocess.Popen] = []
    logs = [os.path.join(tmp, f"rank{r}.log") for r in range(WORLD)]
    ok = False
    try:
        for rank in range(WORLD):
            env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
            env["GLOO_SOCKET_IFNAME"] = ifnames[rank]
            env.pop("LEPTON_ENGINE_HOST", None)
            if hosts is not None:
                env["LEPTON_ENGINE_HOST"] = hosts[rank]
            cmd = prefixes[rank] + [
                sys.executable, os.path.abspath(__file__), "--worker",
                "--mode", mode, "--rank", str(rank), "--addr", addr, "--port", str(port),
                "--rounds", str(rounds), "--mb", str(mb), "--out", out,
                "--small-rounds", str(small_rounds),
            ]  # fmt: skip
            if hosts is not None:
                cmd += ["--tx-ifname", ifnames[rank]]
            with open(logs[rank], "w") as log:
                stdout = None if rank == 0 else log  # rank 0's progress goes to our stdout
                procs.append(subprocess.Popen(cmd, env=env, stdout=stdout, stderr=log))
        deadline = time.monotonic() + timeout
        for rank, proc in enumerate(procs):
            try:
                rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired as e:
                msg = f"{mode}: rank {rank} still running after {timeout:.0f} s"
                raise RuntimeError(msg) from e
            if rc != 0:
                raise RuntimeError(f"{mode}: rank {rank} exited with status {rc}")
        with open(out) as f:
            result = json.load(f)
        ok = True
        return result
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
        if not ok:
            for rank, path in enumerate(logs):
                if os.path.exists(path):
                    with open(path) as f:
                        tail = f.read()[-4000:]
                    print(f"--- rank {rank} output ({path}) ---\n{tail}", file=sys.stderr)


def report(mode: str, setting: str, result: dict, rounds: int) -> None:
    """Print the figures for one setting and record them when ours was measured."""
    times = result["times"]
    med = {k: statistics.median(v) for k, v in times.items()}
    nbytes = result["nbytes"]
    mb = nbytes / 1e6
    ring = 2 * (WORLD - 1) / WORLD * nbytes  # bytes each rank sends in gloo's ring
    gloo_rate = ring * 8 / med["gloo"] / 1e9
    lines = [
        f"{setting}: {mb:.0f} MB float32, {WORLD} ranks, medians of {rounds} interleaved rounds",
        f"gloo all_reduce {med['gloo'] * 1e3:.0f} ms ({gloo_rate:.2f} Gbit/s per rank "
        f"by the ring model)",
    ]
    tx = result.get("tx")
    sent = f"gloo {ring / 1e6:.1f} MB (ring model 2(W-1)/W*N)"
    if tx:
        gloo_tx = statistics.median(tx["gloo"])
        sent += f", {gloo_tx / 1e6:.1f} MB measured on the veth"
    ratio = med["gloo"] / med["ours"]
    goal = GOALS[mode]
    lines.append(
        f"allreduce(t, ErrorFeedback(TopK(0.01))) {med['ours'] * 1e3:.0f} ms, "
        f"compression included: {ratio:.1f}x gloo (goal >= {goal:.0f}x: "
        f"{'met' if ratio >= goal else 'NOT met'})"
    )
    ours = [f"{result['counted'] / 1e6:.2f} MB counted by lepton_nb.links"]
    ours.append(f"payload {result['payload_nbytes'] / 1e6:.2f} MB")
    if tx:
        ours.append(f"{statistics.median(tx['ours']) / 1e6:.2f} MB measured on the veth")
    sent += "; ours " + ", ".join(ours)
    lines.append(f"bytes sent per rank: {sent}")
    if "fp16" in times:
        g, f, _, lo, hi = _ratios(times, "fp16")
        vs = [fp / o for fp, o in zip(times["fp16"], times["ours"])]
        fp16_tx = f", {statistics.median(tx['fp16']) / 1e6:.1f} MB on the veth" if tx else ""
        lines.append(
            f"DDP with torch's fp16_compress_hook {f * 1e3:.0f} ms ({g / f:.1f}x gloo{fp16_tx}): "
            f"ours {f / med['ours']:.1f}x it (rounds {min(vs):.1f}x-{max(vs):.1f}x)"
        )
    if "dense" in times:
        lines += _dense_lines(result)
    print("\n".join(lines))
    print(f"plan (compressed): {result['plan']}")
    for key, label in (("chosen_plan", "with the compressor, measured choice"),
                       ("dense_plan", "no compressor")):  # fmt: skip
        if key in result:
            print(f"plan ({label}): {result[key]}")
    record("bench_allreduce", " | ".join(lines))


def _ratios(times: dict[str, list[float]], ours: str) -> tuple[float, float, float, float, float]:
    """(gloo median, ours median, median ratio, lowest and highest per-round ratio)."""
    per_round = [g / o for g, o in zip(times["gloo"], times[ours])]
    g, o = statistics.median(times["gloo"]), statistics.median(times[ours])
    return g, o, g / o, min(per_round), max(per_round)


def _dense_lines(result: dict) -> list[str]:
    """The shared-memory figures: 100 MB (the rounds above) and 64 KB (bursts)."""
    out = []
    mb = result["nbytes"] / 1e6
    g, o, ratio, lo, hi = _ratios(result["times"], "dense")
    goal = DENSE_GOALS["100 MB"]
    out.append(
        f"allreduce(t) through shared memory, {mb:.0f} MB: {o * 1e3:.1f} ms vs gloo {g * 1e3:.1f} ms: "
        f"{ratio:.1f}x gloo (rounds {lo:.1f}x-{hi:.1f}x; goal >= {goal:.0f}x: "
        f"{'met' if ratio >= goal else 'NOT met'})"
    )
    small = result["small"]
    g, o, ratio, lo, hi = _ratios(small, "dense")
    goal = DENSE_GOALS["64 KB"]
    out.append(
        f"64 KB ({len(small['gloo'])} interleaved rounds of {BURST} back-to-back calls): "
        f"{o * 1e6:.0f} us vs gloo {g * 1e6:.0f} us per call: {ratio:.1f}x gloo "
        f"(rounds {lo:.1f}x-{hi:.1f}x; goal >= {goal:.0f}x: {'met' if ratio >= goal else 'NOT met'})"
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=float, default=100.0, help="tensor size in MB (default 100)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds on loopback (default 7)")
    parser.add_argument(
        "--net-rounds", type=int, default=5, help="rounds across the 1 Gbit/s link (default 5)"
    )
    parser.add_argument("--rate", default="1gbit", help="tc tbf rate (default 1gbit)")
    parser.add_argument("--burst", default="256kb", help="tc tbf burst (default 256kb)")
    parser.add_argument("--latency", default="50ms", help="tc tbf latency (default 50ms)")
    parser.add_argument("--only", choices=["loopback", "netns"], help="run one setting only")
    parser.add_argument(
        "--small-rounds", type=int, default=21, help="64 KB rounds on loopback (default 21)"
    )
    # internal: one rank
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--rank", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--addr", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--tx-ifname", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    def terminate(signum, frame):  # run the `finally` blocks: workers killed, netns removed
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)

    if args.only != "netns":
        print("loopback: 2 ranks on 127.0.0.1 (GLOO_SOCKET_IFNAME=lo)", flush=True)
        result = run_pair(
            "loopback", args.rounds, args.mb, "127.0.0.1", _free_port(), ("lo", "lo"),
            small_rounds=args.small_rounds,
        )  # fmt: skip
        report("loopback", "loopback", result, args.rounds)
    if args.only == "loopback":
        return
    try:
        if os.geteuid() == 0:
            stale = remove_stale()
            if stale:
                print(f"removed network namespaces left by earlier runs: {stale}")
        pair = VethPair(args.rate, args.burst, args.latency)
        pair.__enter__()
    except NetnsUnavailable as e:
        then = "nothing more to run" if args.only == "netns" else "running loopback only"
        print(f"network namespaces not permitted here ({e}): {then}")
        return
    try:
        print(
            f"\nnetns: ranks in {pair.names[0]} ({pair.addrs[0]}) and {pair.names[1]} "
            f"({pair.addrs[1]}), veth {pair.ifnames[0]}<->{pair.ifnames[1]}, "
            f"LEPTON_ENGINE_HOST=ns-a/ns-b, GLOO_SOCKET_IFNAME=the veth",
            flush=True,
        )
        for q in pair.qdiscs():
            print(f"  qdisc: {q}")
        probe = pair.probe()
        print(f"  link check: 25 MB over TCP a -> b at {probe / 1e9:.2f} Gbit/s", flush=True)
        result = run_pair(
            "netns",
            args.net_rounds,
            args.mb,
            pair.addrs[0],
            29500,
            pair.ifnames,
            prefixes=(pair.prefix(0), pair.prefix(1)),
            hosts=("ns-a", "ns-b"),
        )
        for q in pair.qdiscs(stats=True):
            print(f"  after: {q}")
        tx_gloo = statistics.median(result["tx"]["gloo"])
        rate = tx_gloo * 8 / statistics.median(result["times"]["gloo"])
        print(f"  gloo on the link: {rate / 1e9:.2f} Gbit/s per rank measured on the veth")
        if max(probe, rate) > 1.1 * _bits(args.rate):
            print(f"WARNING: faster than the tbf rate {args.rate}: the shaping is not in effect")
        setting = f"netns veth, tc {pair.tbf} both ends"
        report("netns", setting, result, args.net_rounds)
    finally:
        pair.close()
        print(f"removed {pair.names[0]}, {pair.names[1]}")


def _bits(rate: str) -> float:
    """``tc`` rate string (``1gbit``, ``500mbit``) in bit/s."""
    units = {"gbit": 1e9, "mbit": 1e6, "kbit": 1e3, "bit": 1.0}
    for unit, scale in units.items():
        if rate.lower().endswith(unit):
            return float(rate[: -len(unit)]) * scale
    raise ValueError(f"unknown rate {rate!r}")


if __name__ == "__main__":
    main()
