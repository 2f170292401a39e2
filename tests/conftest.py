"""Shared fixtures: a real 2-rank cluster, a cluster factory, and a real IPython shell with
the extension loaded. (The temporary IPYTHONDIR is set up in the root conftest.py.)"""

from __future__ import annotations

import pytest

#: Seconds the session cluster has to register its engines and form its group.
STARTUP_TIMEOUT = 120.0


def _start(**kwargs):
    import lepton_nb

    kwargs.setdefault("gpus", "none")
    kwargs.setdefault("engine_timeout", STARTUP_TIMEOUT)
    cluster = lepton_nb.Cluster(**kwargs)
    try:
        return cluster.start()
    except lepton_nb.ClusterError as e:
        pytest.fail(f"test cluster ({kwargs}) did not start within {STARTUP_TIMEOUT:g} s: {e}")


#: Tests after which the session cluster was found broken and replaced (for the report).
REPLACED: list[str] = []


def health(cluster) -> str | None:
    """What is wrong with the session cluster, or None: every rank alive, in the group, idle."""
    import torch.distributed as dist

    from lepton_nb.cluster.run import run_function

    if not cluster.running:
        return "it is not running"
    if cluster.world_size != 2:
        return f"it has {cluster.world_size} ranks, not 2"
    try:
        cluster.engines()  # refuses a rank whose engine is gone
        # nothing still running: every request this client sent has its reply (the hub's own
        # queue counts lag behind the replies, so they are not asked)
        if cluster.client.outstanding:
            return f"requests still outstanding: {sorted(cluster.client.outstanding)[:3]}"
        sizes = run_function(cluster, dist.get_world_size, (), {}, 30.0)
    except Exception as e:  # any failure to answer is what this looks for
        return f"{type(e).__name__}: {e}"
    if sizes != [2, 2]:
        return f"the group is not formed over both ranks: {sizes}"
    return None


@pytest.fixture(scope="session")
def _session_cluster():
    holder = {"cluster": _start(n=2)}
    yield holder
    holder["cluster"].stop()


@pytest.fixture
def cluster(_session_cluster, request):
    """A real 2-rank CPU cluster (gloo) shared by the whole session.

    After each test it must still be healthy (:func:`health`); if not, it is
    replaced, so one broken test never breaks the next, and the report says so.
    """
    c = _session_cluster["cluster"]
    yield c
    problem = health(c)
    if problem is not None:
        REPLACED.append(f"{request.node.nodeid}: {problem}")
        try:
            c.stop()
        finally:
            _session_cluster["cluster"] = _start(n=2)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say which tests left the session cluster broken (it was replaced after each)."""
    if REPLACED:
        terminalreporter.section("session cluster replaced")
        for line in REPLACED:
            terminalreporter.write_line(line)


@pytest.fixture
def make_cluster(request):
    """Start an extra cluster for one test; it is stopped when the test ends."""

    def make(**kwargs):
        c = _start(**kwargs)
        request.addfinalizer(c.stop)
        return c

    return make


@pytest.fixture(scope="session")
def ip():
    """A real IPython shell with ``%load_ext lepton_nb``."""
    from IPython.testing.globalipapp import start_ipython

    shell = start_ipython()
    shell.run_line_magic("load_ext", "lepton_nb")
    return shell


@pytest.fixture
def ip_cluster(ip, cluster):
    """The shell, with the session cluster as the one the magics use."""
    import lepton_nb

    assert lepton_nb.get_cluster() is cluster, "another test left a cluster running"
    return ip
