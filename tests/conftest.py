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


@pytest.fixture(scope="session")
def cluster():
    """A real 2-rank CPU cluster (gloo) shared by the whole session."""
    c = _start(n=2)
    yield c
    c.stop()


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
