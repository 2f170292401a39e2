"""%lepton_push and %lepton_pull in a real IPython shell."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError

from lepton_nb.magics.args import parse_pull_line, parse_push_line


def test_push_and_pull_through_magics(ip_cluster):
    ip = ip_cluster
    ip.user_ns["arr"] = np.arange(500_000, dtype=np.float64)
    ip.user_ns["label"] = "hello"
    ip.run_line_magic("lepton_push", "arr label")
    ip.run_cell_magic("lepton_distributed", "", "result = (float(arr.sum()), label, rank)")
    assert "result" not in ip.user_ns
    ip.run_line_magic("lepton_pull", "result --rank 1")
    assert ip.user_ns["result"] == (float(np.arange(500_000).sum()), "hello", 1)
    fut = ip.run_line_magic("lepton_push", "arr --ranks 0 --noblock")
    fut.result(timeout=60)


def test_magics_have_help(ip):
    assert "--noblock" in ip.find_line_magic("lepton_push").__doc__
    assert "--rank" in ip.find_line_magic("lepton_pull").__doc__


@pytest.mark.parametrize(
    "line,message",
    [
        ("", "Name what to push"),
        ("nope", "'nope' is not defined in the notebook"),
        ("x --ranks 3", "rank 3 does not exist"),
        ("x --ranks 1-", "cannot read rank spec"),
        ("1x", "'1x' is not a Python name"),
    ],
)
def test_push_line_errors(line, message):
    with pytest.raises(UsageError, match=message):
        parse_push_line(line, {"x": 1}, 2)


@pytest.mark.parametrize(
    "line,message",
    [
        ("", "Name what to pull"),
        ("x --rank 2", r"--rank must be a rank of the cluster \(0-1\), got '2'"),
        ("x --rank one", "--rank must be a rank of the cluster"),
        ("class", "'class' is not a Python name"),
    ],
)
def test_pull_line_errors(line, message):
    with pytest.raises(UsageError, match=message):
        parse_pull_line(line, 2)


def test_bad_push_never_reaches_an_engine(ip_cluster, cluster):
    ip_cluster.user_ns["defined_here"] = 1
    sent = len(cluster.client.history)
    with pytest.raises(UsageError, match="not defined in the notebook"):
        ip_cluster.run_line_magic("lepton_push", "undefined_thing")
    with pytest.raises(UsageError, match="rank 9 does not exist"):
        ip_cluster.run_line_magic("lepton_push", "defined_here --ranks 9")
    assert len(cluster.client.history) == sent


_words = st.sampled_from(
    [
        "x",
        "y",
        "nope",
        "--ranks",
        "--rank",
        "--noblock",
        "all",
        "0",
        "1",
        "2",
        "-1",
        "1-",
        ",",
        "'",
        "-h",
    ]
)
_lines = st.one_of(
    st.text(max_size=24), st.lists(_words | st.text(max_size=5), max_size=6).map(" ".join)
)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(_lines)
def test_fuzz_push_parser_raises_only_usage_error(line):
    try:
        cmd = parse_push_line(line, {"x": 1, "y": 2}, 2)
    except UsageError:
        return
    assert set(cmd.names) <= {"x", "y"} and cmd.ranks and all(0 <= r < 2 for r in cmd.ranks)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(_lines)
def test_fuzz_pull_parser_raises_only_usage_error(line):
    try:
        name, rank = parse_pull_line(line, 2)
    except UsageError:
        return
    assert name.isidentifier() and 0 <= rank < 2
