"""The session's JupyterHub (``hub``), its users' tokens, and kernels in their servers."""

from __future__ import annotations

import pytest

from .hub import Hub, HubUnavailable, UserKernel

USERS = ("alice", "bob", "carol")
#: carol is the one the idle culler may cull, and after this many seconds without activity
CULLED, CULL_TIMEOUT = "carol", 10

#: What a site admin sets for the team (deploy/jupyterhub/ipython_config.py, tuned for tests).
SITE = """c.Cluster.max_ranks = 4
c.Cluster.idle_timeout = 3600
c.Cluster.gpus = "none"
c.Cluster.orphan_timeout = 10
"""


@pytest.fixture(scope="session")
def hub(tmp_path_factory):
    try:  # the rig first, so that the users' servers see its SLURM_CONF
        from tests.hosts import rig

        rig.shared()
    except Exception:  # a rig-less run: the Slurm test says so
        pass
    h = Hub(USERS, CULLED, CULL_TIMEOUT, tmp_path_factory.mktemp("hub"))
    try:
        h.up(SITE)
    except HubUnavailable as e:
        pytest.skip(f"no JupyterHub here: {e}")
    h.culled_processes = _leave_a_cluster_to_the_culler(h)
    yield h
    h.down()


def _leave_a_cluster_to_the_culler(hub: Hub) -> list[int] | str:
    """carol starts a cluster and leaves; the culler stops her server while the other tests run.

    Returns every process of it (the kernel, engines, controller), or why it could not be set up.
    """
    from tests.support.kernels import PROCESSES

    try:
        hub.start_server(CULLED)
        k = UserKernel(hub, CULLED, hub.token(CULLED))
        try:
            k.run("%lepton_cluster start -n 2")
            procs = k.json(PROCESSES)
            return [k.pid(), *procs["engines"], *procs["here"]]
        finally:
            k.close()  # then nobody uses carol's server
    except Exception as e:  # the culling test reports it
        return f"{type(e).__name__}: {e}"


@pytest.fixture(scope="session")
def tokens(hub):
    """Each user's API token, their servers started."""
    out = {}
    for name in ("alice", "bob"):
        hub.start_server(name)
        out[name] = hub.token(name)
    return out


@pytest.fixture
def kernel(request, hub, tokens):
    """``kernel(name)``: a new lepton kernel in that user's server, shut down after the test."""
    opened: list[UserKernel] = []

    def make(name: str) -> UserKernel:
        k = UserKernel(hub, name, tokens[name])
        opened.append(k)
        return k

    yield make
    for k in opened:
        try:
            k.run("import lepton_nb\nc = lepton_nb.get_cluster()\nc and c.stop()", timeout=60)
        except Exception:  # killed or culled in the test
            pass
        k.close()
