"""Cells on ranks through Cluster.execute, the engine of %%lepton_distributed."""

import re
import time

import pytest

from lepton_nb import DistributedTimeout, RemoteError
from tests.support.kernels import wait_gone


def test_gather_returns_values_ordered_by_rank(cluster):
    got = cluster.execute("a = rank * 10\nb = {'r': rank}", gather=["a", "b"])
    assert got == {"a": [0, 10], "b": [{"r": 0}, {"r": 1}]}


def test_names_are_bound_and_the_group_is_live(cluster):
    code = (
        "import torch, torch.distributed as dist\n"
        "t = torch.ones(2) * (rank + 1)\n"
        "dist.all_reduce(t)\n"
        "ok = (dist.is_initialized(), dist.get_world_size(), world_size, local_rank, str(device))\n"
        "total = t.tolist()\n"
    )
    got = cluster.execute(code, gather=["ok", "total"])
    assert got["ok"] == [(True, 2, 2, 0, "cpu"), (True, 2, 2, 1, "cpu")]
    assert got["total"] == [[3.0, 3.0], [3.0, 3.0]]


def test_namespaces_persist_between_cells(cluster):
    cluster.execute("kept = rank + 100")
    assert cluster.execute("again = kept", gather=["again"]) == {"again": [100, 101]}


def test_ranks_subset(cluster):
    assert cluster.execute("only = rank", ranks="1", gather=["only"]) == {"only": [1]}


def test_output_streams_prefixed_by_rank_never_mid_line(cluster, capfd):
    code = (
        "import sys\n"
        "for i in range(200):\n"
        "    sys.stdout.write(f'line {i} of rank {rank}')\n"
        "    sys.stdout.write('\\n')\n"
        "print('to stderr', file=sys.stderr)\n"
    )
    cluster.execute(code)
    out, err = capfd.readouterr()
    lines = out.splitlines()
    assert len(lines) == 400
    for line in lines:
        m = re.fullmatch(r"\[rank (\d)\] line \d+ of rank (\d)", line)
        assert m and m.group(1) == m.group(2), line
    assert "[rank 0] to stderr" in err and "[rank 1] to stderr" in err


def test_output_arrives_while_the_cell_runs(cluster, capfd):
    # rank 0 prints, then sleeps: its line must be out before the cell ends
    import threading

    seen = {}

    def watch():
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "t" not in seen:
            if "early bird" in capfd.readouterr().out:
                seen["t"] = time.monotonic()
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    start = time.monotonic()
    cluster.execute("import time\nprint('early bird', flush=True)\ntime.sleep(2)")
    end = time.monotonic()
    watcher.join()
    assert "t" in seen and seen["t"] < end - 1.0, (seen, start, end)


def test_rich_display_output_comes_back(cluster, capfd):
    cluster.execute(
        "from IPython.display import display, Markdown\ndisplay(Markdown('**bold**'))", ranks="0"
    )
    out = capfd.readouterr().out
    assert "[rank 0]" in out and "Markdown" in out


def test_no_stream_prints_after_the_cell_grouped_by_rank(cluster, capfd):
    cluster.execute(
        "import time\nprint('a', rank)\ntime.sleep(0.3 * (1 - rank))\nprint('b', rank)",
        stream=False,
    )
    lines = capfd.readouterr().out.splitlines()
    assert lines == ["[rank 0] a 0", "[rank 0] b 0", "[rank 1] a 1", "[rank 1] b 1"]


def test_error_on_one_rank_is_named_and_other_results_are_kept(cluster):
    with pytest.raises(RemoteError) as info:
        cluster.execute("x = rank\nif rank == 1:\n    raise KeyError('missing')", gather=["x"])
    err = info.value
    assert not isinstance(err, DistributedTimeout)
    assert err.ranks == [1]
    assert "rank 1: KeyError: 'missing'" in str(err)
    assert err.results == {0: {"x": 0}}
    rendered = "\n".join(err._render_traceback_())
    assert rendered.count("[rank 1] KeyError") == 1


def test_gather_of_an_undefined_name_names_rank_and_name(cluster):
    with pytest.raises(RemoteError) as info:
        cluster.execute("if rank == 0:\n    only_zero = 1", gather=["only_zero"])
    assert info.value.ranks == [1]
    assert "'only_zero' is not defined on this rank" in str(info.value)
    assert info.value.results == {0: {"only_zero": 1}}


def test_timeout_interrupts_and_the_next_cell_works(cluster):
    start = time.monotonic()
    with pytest.raises(DistributedTimeout) as info:
        cluster.execute(
            "import time\nz = rank\nif rank == 1:\n    time.sleep(60)", timeout=1.5, gather=["z"]
        )
    assert time.monotonic() - start < 15
    err = info.value
    assert err.timed_out == [1] and "did not finish: 1" in str(err)
    assert "interrupted" in err.note
    assert err.results == {0: {"z": 0}}
    assert cluster.execute("w = rank", gather=["w"]) == {"w": [0, 1]}


@pytest.mark.slow
def test_timeout_in_a_stuck_collective_restarts_the_rank_and_it_rejoins(cluster):
    pid_before = cluster.placement[0]["pid"]
    code = (
        "import torch, torch.distributed as dist\nif rank == 0:\n    dist.all_reduce(torch.ones(1))"
    )
    with pytest.raises(DistributedTimeout) as info:
        cluster.execute(code, timeout=1.5)
    assert info.value.timed_out == [0]
    assert "restarted" in info.value.note and "rejoined" in info.value.note
    assert cluster.placement[0]["pid"] != pid_before
    got = cluster.execute(
        "import torch, torch.distributed as dist\nt = torch.ones(1)\ndist.all_reduce(t)\nv = t.item()",
        gather=["v"],
        timeout=60,
    )
    assert got == {"v": [2.0, 2.0]}


def test_backend_switch_rejects_nccl_without_gpus(cluster):
    from lepton_nb import ClusterError

    with pytest.raises(ClusterError, match="nccl needs a GPU on every rank"):
        cluster.execute("pass", backend="nccl")
    assert cluster.execute("q = 1", backend="gloo", gather=["q"]) == {"q": [1, 1]}


@pytest.mark.slow
def test_a_rank_that_dies_is_named_restarted_and_the_next_cell_works(cluster):
    with pytest.raises(RemoteError) as info:
        cluster.execute(
            "import os\nx = rank\nif rank == 1:\n    os._exit(3)", gather=["x"], timeout=60
        )
    err = info.value
    assert err.ranks == [1] and err.failures[0].ename == "EngineError"
    assert "died" in err.note and "restarted" in err.note
    assert err.results == {0: {"x": 0}}
    assert cluster.execute(
        "import torch, torch.distributed as dist\nt = torch.ones(1)\ndist.all_reduce(t)\nv = t.item()",
        gather=["v"],
    ) == {"v": [2.0, 2.0]}


@pytest.mark.slow
def test_a_rank_killed_between_cells_shows_dead_and_is_refused_until_restarted(cluster):
    import os
    import signal

    from lepton_nb import ClusterError

    os.kill(cluster.placement[1]["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and cluster.status().rows[1]["state"] != "dead":
        time.sleep(0.1)
    assert cluster.status().rows[1]["state"] == "dead"
    with pytest.raises(
        ClusterError, match=r"Rank 1's engine is gone. Restart it with: %lepton_cluster restart 1"
    ):
        cluster.execute("pass")
    cluster.restart(1)
    assert [r["state"] for r in cluster.status().rows] == ["idle", "idle"]
    assert cluster.execute("w = world_size", gather=["w"]) == {"w": [2, 2]}


def test_a_rank_whose_process_is_gone_is_refused_before_the_hub_notices(cluster):
    import os
    import signal

    from lepton_nb import ClusterError

    pid = cluster.placement[1]["pid"]
    os.kill(pid, signal.SIGKILL)
    # gone (reaped by its nanny); the hub may still list it
    assert wait_gone([pid], 30)[0] == [], "the killed engine is still there"
    with pytest.raises(ClusterError, match=r"Rank 1's engine is gone"):
        cluster.execute("pass")
    assert cluster.status().rows[1]["state"] == "dead"
    cluster.restart(1)
    # restart returns once the new engine's sampler has reported: status agrees at once
    assert cluster.collector.wait_for_samples({1: cluster.placement[1]["pid"]}, 0) == []
    assert [r["state"] for r in cluster.status().rows] == ["idle", "idle"]
    assert cluster.execute("w = world_size", gather=["w"]) == {"w": [2, 2]}


def _watch_exits(pids, timeout=120.0):
    """A thread noting when each of ``pids`` exits (time.monotonic()), polling every 20 ms."""
    import threading

    import psutil

    gone: dict[int, float] = {}

    def watch():
        deadline = time.monotonic() + timeout
        while len(gone) < len(pids) and time.monotonic() < deadline:
            for pid in pids:
                if pid not in gone and not psutil.pid_exists(pid):
                    gone[pid] = time.monotonic()
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return gone, thread


def test_a_rank_blocked_in_a_collective_on_a_dead_peer_is_stopped_within_10_s(cluster, tmp_path):
    old = [p["pid"] for p in cluster.placement]
    gone, watcher = _watch_exits(old)
    stamp = tmp_path / "rank0-interrupted"
    code = (
        "import os, time, torch, torch.distributed as dist\n"
        "if rank == 1:\n"
        "    time.sleep(1.0)\n"
        "    os._exit(3)\n"
        "t = torch.ones(1)\n"
        "try:\n"
        "    dist.all_reduce(t)  # rank 0 waits here on rank 1, which never comes\n"
        "except BaseException:  # gloo saw the peer go, or we were interrupted\n"
        f"    open({str(stamp)!r}, 'w').write(repr(time.time()))\n"
        "    raise\n"
    )
    started = time.time() - time.monotonic()  # monotonic -> wall clock
    with pytest.raises(RemoteError) as err:
        cluster.execute(code)
    watcher.join(30)
    assert old[1] in gone, gone
    died = started + gone[old[1]]
    # rank 0 failed by itself (its peer's socket closed), was interrupted, or was restarted
    stopped = float(stamp.read_text()) if stamp.exists() else started + gone[old[0]]
    assert stopped - died < 10.0, f"rank 0 stopped {stopped - died:.1f} s after rank 1 died"
    failed = {f.rank: f for f in err.value.failures}
    assert failed[1].ename == "EngineError" and 0 in failed
    assert "rank 1" in str(err.value)
    assert cluster.execute("import torch.distributed as dist\nok = dist.get_world_size()",
                           gather=["ok"]) == {"ok": [2, 2]}  # fmt: skip


def test_a_rank_that_is_not_blocked_is_interrupted_when_its_peer_dies(cluster):
    code = (
        "import os, time\n"
        "if rank == 1:\n"
        "    time.sleep(1.0)\n"
        "    os._exit(3)\n"
        "time.sleep(60)\n"
    )
    start = time.monotonic()
    pid0 = cluster.placement[0]["pid"]
    with pytest.raises(RemoteError) as err:
        cluster.execute(code)
    assert time.monotonic() - start < 30  # not the 60 s sleep
    failed = {f.rank: f.ename for f in err.value.failures}
    assert failed == {0: "KeyboardInterrupt", 1: "EngineError"}, failed
    assert cluster.placement[0]["pid"] == pid0  # interrupted, not restarted
    assert cluster.execute("w = world_size", gather=["w"]) == {"w": [2, 2]}
