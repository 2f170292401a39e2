"""The multi-host rig (``rig``) and one cluster per launcher over it (``hosts_cluster``).

The contract suite in this folder runs once per launcher, local, ssh and
slurm, by parametrizing ``hosts_cluster``, as ipyparallel's own ssh and slurm
tests override one cluster fixture. The rig is brought up once per session
and taken down at the end of it, even after failures (``conftest.py`` at the
repository root); without root or the Debian packages, the tests that need
it are skipped and say which.
"""

from __future__ import annotations

import time

import pytest

from . import rig as rig_module

LAUNCHERS = ("local", "ssh", "slurm")
#: Seconds a node has to be empty of engines after a stop.
EMPTY_TIMEOUT_S = 30.0


@pytest.fixture(scope="session")
def rig():
    """The two-node rig (network namespaces, Slurm, sshd), up for the whole session."""
    try:
        return rig_module.shared()
    except rig_module.RigUnavailable as e:
        pytest.skip(f"no multi-host rig here: {e}")


def options(launcher: str, rig: rig_module.Rig, per_host: int = 1) -> dict:
    """Cluster options that put ``per_host`` ranks on each of the rig's two nodes."""
    base = {"gpus": "none", "engine_timeout": 60.0, "progress": False, "launcher": launcher}
    if launcher == "local":
        return dict(base, n=2 * per_host)
    if launcher == "ssh":
        hosts = {n.name: per_host for n in rig.nodes}
        return dict(base, hosts=hosts, ssh_args=rig.ssh_args)
    return dict(base, nodes=len(rig.nodes), ranks_per_node=per_host)


def expected_hosts(launcher: str, rig: rig_module.Rig) -> list[str]:
    import socket

    return [socket.gethostname()] if launcher == "local" else [n.name for n in rig.nodes]


def wait_until_empty(rig: rig_module.Rig, timeout: float = EMPTY_TIMEOUT_S) -> dict[str, list]:
    """Wait (bounded) until no process of ours is left on any node and no job in the queue."""
    deadline = time.monotonic() + timeout
    while True:
        left = {n.name: rig.pids(n.name) for n in rig.nodes}
        left = {k: v for k, v in left.items() if v}
        jobs = rig.squeue()
        if (not left and not jobs) or time.monotonic() > deadline:
            if jobs:
                left["squeue"] = jobs
            return left
        time.sleep(0.2)


@pytest.fixture(scope="module", params=LAUNCHERS)
def hosts_cluster(request, rig):
    """A 2-rank cluster: both ranks here (local), or one on each node (ssh, slurm)."""
    import lepton_nb

    launcher = request.param
    c = lepton_nb.Cluster(**options(launcher, rig))
    try:
        c.start()
    except lepton_nb.ClusterError as e:
        pytest.fail(f"the {launcher} cluster did not start on the rig: {e}")
    c.rig_launcher = launcher  # which parametrization this is, for the tests' expectations
    yield c
    c.stop()
    assert wait_until_empty(rig) == {}, "the cluster left processes or jobs behind"


@pytest.fixture
def shm_usage():
    """What of /dev/shm could leak now: what this process holds, and named files.

    (Segments are unnamed; the engines' go with their processes, which the tests check.)
    """
    from tests.support import shm

    return shm.usage
