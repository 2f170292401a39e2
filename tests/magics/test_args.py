"""The magics' argument checks: each bad input gives a UsageError saying what to type."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError

from lepton_nb.magics import args as A
from lepton_nb.magics.args import parse_cluster_line, parse_distributed_line


@pytest.mark.parametrize(
    "line,expected",
    [
        ("start", A.ClusterCommand("start", None, "auto")),
        ("start -n 3 --gpus none", A.ClusterCommand("start", 3, "none", None, {"n": 3, "gpus": "none"})),
        (
            "start --launcher slurm --nodes 2 --ranks-per-node 4 --gpus-per-node 4 --partition gpu "
            "--time 2:00:00 --account proj",
            A.ClusterCommand("start", options={
                "launcher": "slurm", "nodes": 2, "ranks_per_node": 4, "gpus_per_node": 4,
                "partition": "gpu", "time": "2:00:00", "account": "proj"}),
        ),
        (
            "start --launcher ssh --hosts node1:2,node2:2",
            A.ClusterCommand("start", options={"launcher": "ssh", "hosts": {"node1": 2, "node2": 2}}),
        ),
        ("status", A.ClusterCommand("status")),
        ("scale 4", A.ClusterCommand("scale", 4)),
        ("restart", A.ClusterCommand("restart")),
        ("restart 1", A.ClusterCommand("restart", rank=1)),
        ("stop", A.ClusterCommand("stop")),
    ],
)
def test_cluster_lines(line, expected):
    assert parse_cluster_line(line, gpus_available=0, world_size=2) == expected


@pytest.mark.parametrize(
    "line,message",
    [
        ("launch", "Unknown subcommand 'launch'"),
        ("", "Say what to do, e.g.: %lepton_cluster start -n 2"),
        ("start -n two", "-n must be a whole number of ranks of at least 1, got 'two'"),
        ("start -n 0", "-n must be a whole number"),
        ("start -n -3", "-n must be a whole number"),
        ("scale 0", "scale needs a whole number of ranks of at least 1, got '0'"),
        ("scale", "scale needs a whole number"),
        ("scale x", "scale needs a whole number"),
        ("restart one", "restart takes a rank number, got 'one'"),
        ("restart 5", "rank 5 does not exist: the cluster has ranks 0-1"),
        ("status now", "status takes no value"),
        ("stop -n 2", "-n belongs to start"),
        ("status --launcher slurm", "--launcher belongs to start"),
        ("start --launcher pbs", "--launcher must be one of local, slurm, ssh, got 'pbs'"),
        ("start --nodes 0", "--nodes must be a whole number of at least 1, got '0'"),
        ("start --ranks-per-node x", "--ranks-per-node must be a whole number"),
        ("start --time soon", "--time must be a Slurm time limit such as 1:00:00, got 'soon'"),
        ("start --hosts node1", "--hosts takes HOST:RANKS pairs separated by commas"),
        ("start --hosts node1:0", "--hosts takes HOST:RANKS pairs"),
        ("start --hosts a:1,a:2", "--hosts takes HOST:RANKS pairs"),
        ("start --gpus 0", "GPU 0 is not there: this machine has no GPU"),
        ("start --gpus 0,x", "--gpus must be auto, none or a list like 0,1"),
        ("start 'unclosed", "Cannot read the arguments"),
        ("start --bogus", "unrecognized arguments: --bogus"),
    ],
)
def test_cluster_line_errors(line, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_cluster_line(line, gpus_available=0, world_size=2)


def test_help_is_a_usage_error_with_the_docstring():
    with pytest.raises(UsageError, match="scale N"):
        parse_cluster_line("-h", 0)


def test_distributed_defaults_and_options():
    opts = parse_distributed_line("", 4)
    assert (opts.ranks, opts.timeout, opts.gather, opts.backend, opts.stream) == (
        [0, 1, 2, 3],
        None,
        [],
        "auto",
        True,
    )
    opts = parse_distributed_line(
        "--ranks 1-2 --timeout 2.5 --gather a,b --backend gloo --no-stream", 4
    )
    assert (opts.ranks, opts.timeout, opts.gather, opts.backend, opts.stream) == (
        [1, 2],
        2.5,
        ["a", "b"],
        "gloo",
        False,
    )


@pytest.mark.parametrize(
    "line,message",
    [
        ("--ranks 4", "--ranks: rank 4 does not exist: the cluster has ranks 0-3"),
        ("--ranks=", "--ranks: empty rank list"),
        ("--ranks 0,,x", "--ranks: cannot read rank spec"),
        ("--timeout 0", "--timeout must be a number of seconds greater than 0, got '0'"),
        ("--timeout -1", "--timeout must be a number of seconds greater than 0"),
        ("--timeout soon", "--timeout must be a number of seconds greater than 0, got 'soon'"),
        ("--timeout nan", "--timeout must be a number of seconds greater than 0"),
        ("--gather 1x", "--gather: '1x' is not a Python name"),
        ("--gather a,,b", "--gather: '' is not a Python name"),
        ("--gather class", "--gather: 'class' is not a Python name"),
        ("--backend mpi", "--backend must be auto, gloo or nccl, got 'mpi'"),
        ("--backend nccl", "--backend nccl needs a GPU on every rank"),
        ("--frobnicate", "unrecognized arguments"),
    ],
)
def test_distributed_line_errors(line, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        parse_distributed_line(line, 4)


_tokens = st.sampled_from(
    [
        "start",
        "stop",
        "status",
        "scale",
        "restart",
        "-n",
        "--gpus",
        "--ranks",
        "--timeout",
        "--gather",
        "--backend",
        "--no-stream",
        "-h",
        "--help",
        "all",
        "none",
        "auto",
        "0",
        "1",
        "-1",
        "2-1",
        "0,1",
        "1e9",
        "nan",
        "inf",
        "x",
        "'",
        '"',
        "=",
        ",",
        "--",
        "nccl",
        "gloo",
    ]
)
_lines = st.one_of(
    st.text(max_size=30), st.lists(_tokens | st.text(max_size=6), max_size=6).map(" ".join)
)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(_lines, st.integers(min_value=1, max_value=4))
def test_fuzz_cluster_parser_raises_only_usage_error(line, world):
    try:
        cmd = parse_cluster_line(line, gpus_available=0, world_size=world)
    except UsageError:
        return
    assert cmd.action in A.ACTIONS


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(_lines, st.integers(min_value=1, max_value=4))
def test_fuzz_distributed_parser_raises_only_usage_error(line, world):
    try:
        opts = parse_distributed_line(line, world)
    except UsageError:
        return
    assert opts.ranks and all(0 <= r < world for r in opts.ranks)
    assert opts.timeout is None or opts.timeout > 0
