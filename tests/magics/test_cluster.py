"""The magics in a real IPython shell against a real cluster."""

import pytest
from IPython.core.error import UsageError

import lepton_nb
from lepton_nb.cluster import core as cluster_mod
from lepton_nb.cluster.status import COLUMNS
from lepton_nb.magics import args as A
from lepton_nb.magics.cluster import ALREADY_RUNNING


@pytest.fixture
def no_cluster(monkeypatch):
    """Hide running clusters from the magics for one test (the session cluster keeps running)."""
    monkeypatch.setattr(cluster_mod, "_started", [])


def test_extension_registers_unregisters_and_reloads(ip):
    magics = ip.magics_manager.magics
    assert "lepton_cluster" in magics["line"] and "lepton_distributed" in magics["cell"]
    ip.run_line_magic("unload_ext", "lepton_nb")
    assert "lepton_cluster" not in magics["line"] and "lepton_distributed" not in magics["cell"]
    ip.run_line_magic("load_ext", "lepton_nb")
    ip.run_line_magic("reload_ext", "lepton_nb")
    assert "lepton_cluster" in magics["line"] and "lepton_distributed" in magics["cell"]


def test_every_magic_has_help(ip):
    line_doc = ip.find_line_magic("lepton_cluster").__doc__
    cell_doc = ip.find_cell_magic("lepton_distributed").__doc__
    for text in ("start [-n N]", "scale N", "restart [RANK]", "stop", "--gpus"):
        assert text in line_doc
    for text in ("--ranks", "--timeout", "--gather", "--backend", "--no-stream", "world_size"):
        assert text in cell_doc


def test_distributed_without_a_cluster_says_what_to_type(ip, no_cluster):
    with pytest.raises(
        UsageError, match=r"No cluster running. Start one with: %lepton_cluster start -n 2"
    ):
        ip.run_cell_magic("lepton_distributed", "", "x = 1")
    with pytest.raises(UsageError, match="No cluster running"):
        ip.run_line_magic("lepton_cluster", "scale 2")


def test_status_and_stop_without_a_cluster_just_say_so(ip, no_cluster, capsys):
    ip.run_line_magic("lepton_cluster", "status")
    ip.run_line_magic("lepton_cluster", "stop")
    assert capsys.readouterr().out.count("No cluster running") == 2


def test_gather_binds_names_in_the_notebook(ip_cluster):
    ip_cluster.run_cell_magic("lepton_distributed", "--gather a,b", "a = rank\nb = [world_size]")
    assert ip_cluster.user_ns["a"] == [0, 1]
    assert ip_cluster.user_ns["b"] == [[2], [2]]


def test_braces_are_not_expanded_from_the_notebook(ip_cluster):
    ip_cluster.user_ns["rank"] = 99
    ip_cluster.run_cell_magic("lepton_distributed", "--gather s", 's = f"{rank}"')
    assert ip_cluster.user_ns["s"] == ["0", "1"]


def test_streamed_output_in_the_shell(ip_cluster, capfd):
    ip_cluster.run_cell_magic("lepton_distributed", "", "print('hello from', rank)")
    out = capfd.readouterr().out
    assert "[rank 0] hello from 0" in out and "[rank 1] hello from 1" in out


def test_remote_error_shows_each_traceback_once_and_keeps_results(ip_cluster, capfd):
    result = ip_cluster.run_cell(
        "%%lepton_distributed --gather g\ng = rank\nif rank == 0:\n    raise ZeroDivisionError('zero')"
    )
    err = result.error_in_exec
    assert isinstance(err, lepton_nb.RemoteError)
    assert err.ranks == [0] and err.results == {1: {"g": 1}}
    shown = capfd.readouterr()
    text = shown.out + shown.err
    assert text.count("[rank 0] ZeroDivisionError: zero") == 1
    assert "rank 0: ZeroDivisionError: zero" in str(err)


def test_timeout_then_the_next_cell_works(ip_cluster):
    result = ip_cluster.run_cell("%%lepton_distributed --timeout 1\nimport time\ntime.sleep(30)")
    assert isinstance(result.error_in_exec, lepton_nb.DistributedTimeout)
    assert result.error_in_exec.timed_out == [0, 1]
    ip_cluster.run_cell_magic("lepton_distributed", "--gather after", "after = rank")
    assert ip_cluster.user_ns["after"] == [0, 1]


@pytest.mark.parametrize(
    "line,message",
    [
        ("--ranks 2", "rank 2 does not exist"),
        ("--ranks 0-", "cannot read rank spec"),
        ("--timeout 0", "--timeout must be a number of seconds greater than 0"),
        ("--gather not-a-name", "is not a Python name"),
        ("--backend nccl", "needs a GPU on every rank"),
    ],
)
def test_bad_cell_arguments_never_reach_an_engine(ip_cluster, cluster, line, message):
    sent = len(cluster.client.history)
    with pytest.raises(UsageError, match=message):
        ip_cluster.run_cell_magic("lepton_distributed", line, "x = 1")
    assert len(cluster.client.history) == sent


@pytest.mark.parametrize(
    "line,message",
    [
        ("start", ALREADY_RUNNING.split("(")[0]),
        ("scale 0", A.BAD_SCALE.split("{")[0]),
        ("restart 7", "rank 7 does not exist"),
        ("explode", "Unknown subcommand 'explode'"),
        ("start -n 1.5", "-n must be a whole number"),
    ],
)
def test_bad_cluster_arguments(ip_cluster, cluster, line, message):
    sent = len(cluster.client.history)
    with pytest.raises(UsageError, match=message):
        ip_cluster.run_line_magic("lepton_cluster", line)
    assert len(cluster.client.history) == sent and cluster.world_size == 2


@pytest.mark.slow
def test_whole_lifecycle_through_magics(ip, no_cluster, capsys):
    ip.run_line_magic("lepton_cluster", "start -n 1 --gpus none")
    c = lepton_nb.get_cluster()
    try:
        assert c is not None and c.world_size == 1
        ip.run_line_magic("lepton_cluster", "scale 2")
        assert c.world_size == 2
        pid = c.placement[1]["pid"]
        ip.run_line_magic("lepton_cluster", "restart 1")
        assert c.placement[1]["pid"] != pid
        ip.run_line_magic("lepton_cluster", "status")
        ip.run_cell_magic(
            "lepton_distributed",
            "--gather total",
            "import torch, torch.distributed as dist\nt = torch.ones(1)\ndist.all_reduce(t)\ntotal = t.item()",
        )
        assert ip.user_ns["total"] == [2.0, 2.0]
    finally:
        ip.run_line_magic("lepton_cluster", "stop")
    assert not c.running and lepton_nb.get_cluster() is None
    out = capsys.readouterr().out
    assert "Starting 1 ranks" in out and "Stopped 2 ranks." in out
    assert any(line.split() == list(COLUMNS) for line in out.splitlines())
