"""No leaks: 50 start/stop cycles in one real kernel grow none of its resources."""

import os
import time

import pytest

from tests.support.kernels import lepton_kernel

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

CYCLES = int(os.environ.get("LEPTON_TEST_CYCLES", "50"))
#: Seconds after a stop for what it closes (threads, sockets, child processes) to be gone.
SETTLE_S = 10.0

#: What the kernel process holds: its own fds and threads, and every descendant's.
USAGE = """
import json, os, threading, time, psutil

def _lepton_usage():
    me = psutil.Process()
    kids = me.children(recursive=True)
    ports = set()
    for p in [me, *kids]:
        try:
            ports |= {(p.pid, c.laddr.port) for c in p.net_connections(kind="inet")
                      if c.status == psutil.CONN_LISTEN}
        except psutil.Error:  # gone while being looked at
            pass
    shm = 0
    for entry in os.scandir("/dev/shm"):
        try:
            shm += entry.stat().st_size
        except OSError:
            pass
    return {"fds": me.num_fds(), "threads": threading.active_count(),
            "os_threads": me.num_threads(), "children": len(kids),
            "ports": len(ports), "shm_bytes": shm}

def _lepton_settled(baseline, timeout):
    # a stop's threads and processes end on their own schedule: wait (bounded) for the
    # usage to come back to the baseline, and give what it was when the wait ended
    deadline = time.monotonic() + timeout
    while True:
        now = _lepton_usage()
        if all(now[k] <= baseline[k] for k in baseline) or time.monotonic() > deadline:
            return now
        time.sleep(0.1)
"""


def test_fifty_start_stop_cycles_grow_no_fds_threads_children_ports_or_shm():
    samples: list[dict[str, int]] = []
    with lepton_kernel() as k:
        k.run(USAGE)
        # the first cycle imports and starts what a kernel keeps for good (modules,
        # tqdm's monitor thread): the baseline is taken after it
        k.run("%lepton_cluster start -n 1 --gpus none\n%lepton_cluster stop")
        baseline = k.json("print(json.dumps(_lepton_usage()))")
        t0 = time.monotonic()
        for i in range(CYCLES):
            k.run("%lepton_cluster start -n 1 --gpus none")
            k.run("%%lepton_distributed\nx = rank + 1")
            k.run("%lepton_cluster stop")
            print(f"cycle {i + 2}: {time.monotonic() - t0:.1f} s", flush=True)
            samples.append(
                k.json(f"print(json.dumps(_lepton_settled({baseline!r}, {SETTLE_S})))")
            )
    print(f"baseline after the first cycle: {baseline}")
    for i in sorted({i for i in (0, 9, 19, 29, 39) if i < CYCLES} | {CYCLES - 1}):
        print(f"after cycle {i + 2}: {samples[i]}")
    grown = {k: (baseline[k], v) for k, v in samples[-1].items() if v > baseline[k]}
    assert not grown, f"grew over {CYCLES} start/stop cycles (baseline, after): {grown}"
    # and no steady climb that happened to dip at the end
    for key in baseline:
        assert max(s[key] for s in samples[CYCLES // 2 :]) <= baseline[key], (key, samples)
