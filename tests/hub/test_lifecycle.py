"""Under the hub: the culler and a killed kernel leave nothing; the site's limits hold; Slurm as the user."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.support.kernels import PROCESSES, wait_gone

from .conftest import CULL_TIMEOUT, CULLED
from .hub import UserKernel

pytestmark = pytest.mark.slow


def _everything(k: UserKernel) -> list[int]:
    """The kernel, its engines and every process it started (controller, nannies, schedulers)."""
    procs = k.json(PROCESSES)
    return [k.pid(), *procs["engines"], *procs["here"]]


def test_the_idle_culler_takes_the_users_clusters_with_it(hub):
    # carol started a 2-rank cluster when the hub came up, then left (conftest.py)
    pids = hub.culled_processes
    assert isinstance(pids, list), f"carol's cluster did not start: {pids}"
    deadline = time.monotonic() + CULL_TIMEOUT + 90
    while hub.server_running(CULLED) and time.monotonic() < deadline:
        time.sleep(1)
    assert not hub.server_running(CULLED), "the idle culler did not stop carol's server"
    left, waited = wait_gone(pids, timeout=60)
    assert left == [], f"{waited:.0f} s after carol's server was culled, still running: {left}"


def test_a_killed_kernel_leaves_no_engine_or_controller(hub, kernel):
    import os
    import signal

    k = kernel("alice")
    k.run("%lepton_cluster start -n 2")
    pids = _everything(k)
    os.kill(pids[0], signal.SIGKILL)  # the kernel, as the OOM killer would
    left, waited = wait_gone(pids, timeout=60)
    assert left == [], f"{waited:.0f} s after alice's kernel died, still running: {left}"


def test_the_sites_limits_hold_in_a_users_kernel(kernel):
    k = kernel("alice")
    with pytest.raises(AssertionError, match=r"ranks 5 is over this site's limit: c.Cluster.max_ranks = 4"):
        k.run("%lepton_cluster start -n 5")
    assert k.run("import lepton_nb, sys\nfrom lepton_nb.cluster.limits import in_force\n"
                 "print(in_force({'max_ranks': 99}).max_ranks, in_force({}).idle_timeout)"
                 ).strip() == "4 3600"  # fmt: skip
    # a user may ask for a shorter idle timeout than the site's, never a longer one
    k.run("c = lepton_nb.Cluster(n=1, idle_timeout=3).start()")
    k.run("import time\nfor _ in range(300):\n    if not c.running: break\n    time.sleep(0.1)\n"
          "assert not c.running")  # fmt: skip
    with pytest.raises(AssertionError, match=r"stopped itself after 3 s without a cell, run, push or pull"):
        k.run("%%lepton_distributed\nx = 1")


def test_slurm_under_the_hub_submits_as_the_user(hub, kernel):
    from tests.hosts import rig as rig_module

    try:
        rig = rig_module.shared()
    except rig_module.RigUnavailable as e:
        pytest.skip(f"no multi-host rig here: {e}")
    k = kernel("alice")
    k.run("import lepton_nb\nc = lepton_nb.Cluster(launcher='slurm', nodes=2, progress=False).start()")
    cid = k.run("print(c.cluster_id)").strip()
    out = subprocess.run(["squeue", "-h", "-o", "%u %j %T"], capture_output=True, text=True,
                         timeout=30, env={**__import__("os").environ, **rig.env}).stdout  # fmt: skip
    jobs = [line.split() for line in out.splitlines() if cid in line]
    assert jobs and all(user == "alice" and state == "RUNNING" for user, _, state in jobs), out
    hosts = k.run("print(sorted({p['host'] for p in c.placement}))").strip()
    assert hosts == "['node1', 'node2']"
    k.run("c.stop()")
    out = subprocess.run(["squeue", "-h", "-o", "%j"], capture_output=True, text=True, timeout=30,
                         env={**__import__("os").environ, **rig.env}).stdout  # fmt: skip
    assert cid not in out
