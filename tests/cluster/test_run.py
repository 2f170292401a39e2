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


@pytest.mark.alone  # times the interrupt
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


@pytest.mark.alone  # times how soon the peer is stopped
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
    deadline = time.monotonic() + 30  # rank 0 may live on (it failed by itself): wait for 1 only
    while old[1] not in gone and time.monotonic() < deadline:
        time.sleep(0.05)
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


def test_a_rank_that_is_not_waiting_on_its_dead_peer_finishes_and_keeps_its_result(cluster):
    code = (
        "import os, time\n"
        "if rank == 1:\n"
        "    time.sleep(1.0)\n"
        "    os._exit(3)\n"
        "time.sleep(4)  # busy with its own work, in no collective: left to finish\n"
        "x = 'done'\n"
    )
    pid0 = cluster.placement[0]["pid"]
    with pytest.raises(RemoteError) as err:
        cluster.execute(code, gather=["x"])
    failed = {f.rank: f.ename for f in err.value.failures}
    assert failed == {1: "EngineError"}, failed
    assert err.value.results == {0: {"x": "done"}}
    assert cluster.placement[0]["pid"] == pid0  # not interrupted, not restarted
    assert cluster.execute("w = world_size", gather=["w"]) == {"w": [2, 2]}


@pytest.mark.alone  # times how soon the peer is stopped
def test_a_rank_waiting_in_torch_distributed_on_a_dead_peer_is_stopped(cluster, tmp_path):
    # rank 1 dies, but a child of its holds its sockets open, as a host that stops answering
    # does: rank 0's all_reduce never fails by itself; its samples show it waiting there
    holder = tmp_path / "holder-pid"
    code = (
        "import os, time, torch, torch.distributed as dist\n"
        "if rank == 1:\n"
        "    child = os.fork()\n"
        "    if child == 0:\n"
        "        time.sleep(60)\n"
        "        os._exit(0)\n"
        f"    open({str(holder)!r}, 'w').write(str(child))\n"
        "    time.sleep(1.0)\n"
        "    os._exit(3)\n"
        "dist.all_reduce(torch.ones(1))\n"
    )
    start = time.monotonic()
    try:
        with pytest.raises(RemoteError) as err:
            cluster.execute(code)
        took = time.monotonic() - start
    finally:
        if holder.exists():
            import os
            import signal

            os.kill(int(holder.read_text()), signal.SIGKILL)
    assert took < 10, f"rank 0 was stopped {took:.1f} s after the cell began"
    failed = {f.rank: f.ename for f in err.value.failures}
    assert failed[1] == "EngineError" and 0 in failed, failed
    assert "on rank 1, which died" in err.value.note, err.value.note
    assert cluster.execute("w = world_size", gather=["w"]) == {"w": [2, 2]}

def _memory_cgroup():
    """This process's cgroup-v1 memory folder, if it is there and writable; else why not."""
    import os

    try:
        with open("/proc/self/cgroup") as f:
            lines = [line.strip().split(":", 2) for line in f]
    except OSError as e:
        return None, f"no /proc/self/cgroup: {e}"
    paths = [path for _, controllers, path in lines if "memory" in controllers.split(",")]
    if not paths:
        return None, "no cgroup-v1 memory controller"
    folder = "/sys/fs/cgroup/memory" + paths[0]
    if not os.access(os.path.join(folder, "cgroup.procs"), os.W_OK):
        return None, f"{folder} is not writable"
    return folder, ""


@pytest.fixture
def memory_limited_rank(cluster):
    """Rank 1's engine in a memory cgroup of its own, limited to 256 MiB more than it holds."""
    import os

    parent, why = _memory_cgroup()
    if parent is None:
        pytest.skip(f"cannot limit an engine's memory here: {why}")
    folder = os.path.join(parent, f"lepton-oom-{os.getpid()}")
    os.mkdir(folder)
    try:
        with open(os.path.join(folder, "memory.limit_in_bytes"), "w") as f:
            f.write(str(256 * 2**20))  # charged from the move on: what it allocates next
        with open(os.path.join(folder, "cgroup.procs"), "w") as f:
            f.write(str(cluster.placement[1]["pid"]))
        yield folder
    finally:
        left, _ = wait_gone(_pids_in(folder), 30)
        assert left == [], f"still in the test's memory cgroup: {left}"
        os.rmdir(folder)


def _pids_in(folder):
    import os

    with open(os.path.join(folder, "cgroup.procs")) as f:
        return [int(line) for line in f if line.strip()]


ALLOCATE_1_GIB = "import numpy as np\nx = rank\nbig = np.ones(2**27)\nsize = big.nbytes\n"


@pytest.mark.slow
def test_a_rank_killed_for_memory_is_named_dead_restarted_and_others_results_kept(
    cluster, memory_limited_rank
):
    import os

    old = cluster.placement[1]["pid"]
    with pytest.raises(RemoteError) as info:
        cluster.execute(ALLOCATE_1_GIB, gather=["x", "size"], timeout=120)
    with open(os.path.join(memory_limited_rank, "memory.oom_control")) as f:
        assert "oom_kill 1" in f.read(), "the kernel's OOM killer did not act"
    err = info.value
    assert err.ranks == [1] and err.failures[0].ename == "EngineError", err
    assert "rank 1" in str(err) and "died" in err.note and "restarted" in err.note
    assert err.results == {0: {"x": 0, "size": 2**30}}
    # restarted at once, outside the limit: the next cell runs on both ranks
    assert cluster.placement[1]["pid"] != old
    assert cluster.execute(ALLOCATE_1_GIB, gather=["size"]) == {"size": [2**30, 2**30]}


@pytest.mark.slow
def test_a_rank_over_its_address_space_limit_names_the_memory_error_and_lives(cluster):
    import subprocess

    import psutil

    pid = cluster.placement[1]["pid"]
    cluster.execute("kept = rank")
    vms = psutil.Process(pid).memory_info().vms
    # prlimit(1) on the live engine: a soft limit of what it has now plus 256 MiB
    subprocess.run(["prlimit", f"--pid={pid}", f"--as={vms + 256 * 2**20}:"], check=True)
    try:
        with pytest.raises(RemoteError) as info:
            cluster.execute(ALLOCATE_1_GIB, gather=["x"], timeout=120)
    finally:
        subprocess.run(["prlimit", f"--pid={pid}", "--as=unlimited:"], check=True)
    err = info.value
    assert err.ranks == [1] and err.failures[0].ename == "MemoryError", err
    assert "rank 1: MemoryError: Unable to allocate 1.00 GiB" in str(err)
    assert err.results == {0: {"x": 0}}
    # the allocation failed, not the engine: same process, namespace kept
    assert cluster.placement[1]["pid"] == pid
    assert cluster.execute("again = kept", gather=["again"]) == {"again": [0, 1]}
