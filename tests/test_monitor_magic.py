import pytest
from IPython.core.error import UsageError

from lepton_nb.cluster import get_cluster
from lepton_nb.magics.monitor import BAD_SYNTAX, parse_monitor_line
from lepton_nb.monitor import BAD_INTERVAL, Monitor


def test_parse():
    assert parse_monitor_line("") == 0.5
    assert parse_monitor_line("--interval 2") == 2.0


@pytest.mark.parametrize("value", ["0", "0.05", "-1", "abc", "nan"])
def test_bad_interval(value):
    with pytest.raises(UsageError, match="The monitor's interval must be at least 0.1 s"):
        parse_monitor_line(f"--interval {value}")
    assert BAD_INTERVAL.startswith("The monitor's interval")


def test_unknown_arguments():
    with pytest.raises(UsageError, match="Usage: %lepton_monitor"):
        parse_monitor_line("--colour red")
    assert "Usage" in BAD_SYNTAX


def test_no_cluster(ip, monkeypatch):
    monkeypatch.setattr("lepton_nb.cluster.core._started", [])  # as if none were running
    with pytest.raises(UsageError, match="No cluster running"):
        ip.run_line_magic("lepton_monitor", "")


@pytest.mark.slow
@pytest.mark.labextension  # the widget's bundled front end
def test_magic_shows_a_monitor(ip_cluster):
    w = ip_cluster.run_line_magic("lepton_monitor", "--interval 0.3")
    try:
        assert isinstance(w, Monitor) and w.interval == 0.3 and w.running
        assert w.cluster_id == get_cluster().cluster_id  # the cluster the magics use
    finally:
        w.close()
    assert (
        "%lepton_monitor [--interval SECONDS]"
        in ip_cluster.find_line_magic("lepton_monitor").__doc__
    )
