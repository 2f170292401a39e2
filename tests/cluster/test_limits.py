"""Site limits: max_ranks and max_nodes from the site's configuration, idle_timeout stops a cluster."""

import time

import pytest
from IPython.core.error import UsageError

import lepton_nb
from lepton_nb import ClusterError
from lepton_nb.cluster.limits import LimitError, in_force


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A site-wide IPython configuration folder (as sys.prefix/etc/ipython is for a hub)."""
    import IPython.core.application as app

    folder = tmp_path / "etc-ipython"
    folder.mkdir()
    monkeypatch.setattr(app, "ENV_CONFIG_DIRS", [str(folder)])

    def write(text: str) -> None:
        (folder / "ipython_config.py").write_text(text)

    return write


def test_a_request_over_a_limit_names_the_limit_and_its_value(site):
    site("c.Cluster.max_ranks = 2\nc.Cluster.max_nodes = 1\n")
    c = lepton_nb.Cluster(n=3, gpus="none")
    with pytest.raises(LimitError, match=r"ranks 3 is over this site's limit: c.Cluster.max_ranks = 2") as err:
        c.start()
    assert isinstance(err.value, UsageError)  # a wrong request, from Python as from the magic
    assert not c.running and c.runtime_files == []
    with pytest.raises(ClusterError, match=r"nodes 2 is over this site's limit: c.Cluster.max_nodes = 1"):
        lepton_nb.Cluster(launcher="ssh", hosts={"a": 1, "b": 1}).start()


def test_a_user_cannot_raise_a_limit_only_lower_it(site):
    site("c.Cluster.max_ranks = 4\nc.Cluster.idle_timeout = 600\n")
    assert in_force({"max_ranks": 100}).max_ranks == 4  # Cluster(max_ranks=100) changes nothing
    assert in_force({"max_ranks": 2}).max_ranks == 2
    assert in_force({}).idle_timeout == 600 and in_force({"idle_timeout": 60}).idle_timeout == 60


def test_scale_is_held_to_the_limit_too(site, make_cluster):
    site("c.Cluster.max_ranks = 2\n")
    c = make_cluster(n=1)
    with pytest.raises(LimitError, match="max_ranks = 2"):
        c.scale(3)
    assert c.world_size == 1


@pytest.fixture
def no_cluster(monkeypatch):
    """Hide running clusters (the session's) from the magics for one test."""
    monkeypatch.setattr("lepton_nb.cluster.core._started", [])


def test_the_magic_gives_a_usage_error_naming_the_limit(site, ip, no_cluster):
    from IPython.core.error import UsageError

    site("c.Cluster.max_ranks = 2\n")
    with pytest.raises(UsageError, match=r"c.Cluster.max_ranks = 2"):
        ip.run_line_magic("lepton_cluster", "start -n 5 --gpus none")


def test_an_idle_cluster_stops_itself_and_its_next_use_says_why(site, ip, no_cluster):
    from IPython.core.error import UsageError

    from lepton_nb.cluster import core

    site("c.Cluster.idle_timeout = 3\n")
    c = lepton_nb.Cluster(n=1, gpus="none", progress=False).start()
    try:
        pids = [p["pid"] for p in c.placement]
        for _ in range(3):  # use keeps it alive: 3 x 2 s of work and pauses is past the timeout
            c.execute("import time; time.sleep(1)")
            time.sleep(1)
        assert c.running
        deadline = time.monotonic() + 30
        while c.running and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not c.running
        with pytest.raises(ClusterError, match=r"stopped itself after 3 s without a cell, run, push"):
            c.run(int)
        assert "Start it again with: %lepton_cluster start -n 1 --gpus none" in c.stopped_because
        assert core.idle_stopped() is c
        with pytest.raises(UsageError, match="stopped itself after 3 s"):
            ip.run_cell_magic("lepton_distributed", "", "x = 1")
        from tests.support.kernels import wait_gone

        assert wait_gone(pids, timeout=30)[0] == []  # its engine is gone too
    finally:
        c.stop()
