"""Tasks on a real cluster: order, retries on a killed rank, lost values, room, cancel, 10,000 tasks.

Task functions import what they use: ipyparallel sends them by value.
"""

import os
import signal
import time

import pytest

import lepton_nb
from lepton_nb import LostData, TaskError
from tests.support.kernels import wait_gone


def _stamped(value, seconds=0.0):
    import time

    start = time.time()
    time.sleep(seconds)
    return value, start, time.time()


def _join(left, right):
    return left[0] + right


def _double(x):
    return 2 * x


def _fail_on(x, bad):
    if x == bad:
        raise ValueError(f"bad item {x}")
    return x


def test_futures_and_after_order_tasks_and_pass_results(cluster):
    a = cluster.submit(_stamped, "A", 1.0)
    b = cluster.submit(_join, a, "B")  # waits for a's value
    c = cluster.submit(_stamped, "C", after=[a])  # ordering only: ipyparallel's own dependency
    assert b.result(60) == "AB"
    _, _, a_end = a.result()
    _, c_start, _ = c.result(60)
    assert c_start >= a_end, (a.result(), c.result())
    assert a.rank in (0, 1) and b.rank in (0, 1)
    assert isinstance(a, lepton_nb.Future) and a.done() and a.exception() is None
    seen = []
    a.add_done_callback(seen.append)  # done already: called at once
    assert seen == [a]


def test_a_failed_task_is_named_with_its_rank_and_its_dependents_fail_too(cluster):
    f = cluster.submit(_fail_on, 3, 3)
    g = cluster.submit(_double, f)
    assert f.exception(60) is not None and f.rank in (0, 1)
    with pytest.raises(TaskError, match=rf"task {f.task} failed on rank {f.rank}.*: ValueError: bad item 3"):
        f.result(60)
    with pytest.raises(TaskError, match=rf"it depends on task {f.task}, which failed"):
        g.result(60)
    fs = cluster.map(_fail_on, range(6), [4] * 6, chunksize=3)
    with pytest.raises(TaskError, match=r"bad item 4"):
        cluster.gather(fs)
    # one call's error fails its own future only
    assert [x.result(60) for i, x in enumerate(fs) if i != 4] == [0, 1, 2, 3, 5]


def test_wait_and_as_completed(cluster):
    fs = [cluster.submit(_stamped, i, 0.5 * i) for i in range(3)]
    done, not_done = lepton_nb.wait(fs, timeout=60, return_when="FIRST_COMPLETED")
    assert done and len(done) + len(not_done) == 3
    order = [f.result()[0] for f in lepton_nb.as_completed(fs, timeout=60)]
    assert sorted(order) == [0, 1, 2]
    with pytest.raises(ValueError, match="return_when"):
        lepton_nb.wait(fs, return_when="SOMETIME")


def test_a_task_that_calls_a_collective_raises_instead_of_hanging(cluster):
    def reduce_in_a_task():
        import torch
        import torch.distributed as dist

        dist.all_reduce(torch.ones(1))

    f = cluster.submit(reduce_in_a_task)
    with pytest.raises(TaskError, match=r"CollectiveInTask: task reduce_in_a_task-\d+ called "
                                        r"torch.distributed.all_reduce, a collective"):
        f.result(60)
    # a distributed cell still runs its collectives
    assert cluster.execute("import torch, torch.distributed as dist\nt = torch.ones(1)\n"
                           "dist.all_reduce(t)\nv = t.item()", gather=["v"]) == {"v": [2.0, 2.0]}


def _touch_then_sleep(path, seconds):
    import time

    open(path, "w").close()
    time.sleep(seconds)
    return "slept"


def test_cancel_of_a_task_that_has_not_started(cluster, tmp_path):
    slow = cluster.submit(_stamped, "slow", 2.0)
    waiting = cluster.submit(_join, slow, "x")  # waits here for slow's value
    assert waiting.cancel() is True and waiting.cancelled()
    # handed to ipyparallel, queued behind both busy ranks: aborted there
    busy = [cluster.submit(_stamped, i, 1.5) for i in range(2)]
    queued = cluster.submit(_double, 21, after=[slow])
    assert queued.cancel() is True, queued
    assert slow.result(60)[0] == "slow" and [b.result(60)[0] for b in busy] == [0, 1]
    started = tmp_path / "started"
    running = cluster.submit(_touch_then_sleep, str(started), 2.0)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not started.exists():
        time.sleep(0.05)
    assert started.exists(), "the task did not start within 30 s"
    assert running.cancel() is False  # it runs: cancel() cannot stop it
    assert running.result(60) == "slept"


def test_ten_thousand_tasks_through_map(cluster):
    start = time.monotonic()
    fs = cluster.map(_double, range(10_000))
    assert len(fs) == 10_000
    assert cluster.gather(fs, timeout=300) == [2 * i for i in range(10_000)]
    took = time.monotonic() - start
    assert {f.rank for f in fs} == {0, 1}
    print(f"10,000 tasks through map in {took:.1f} s")


def test_long_map_and_gather_show_progress_bars(cluster, capsys):
    fs = cluster.map(_double, range(500))
    assert cluster.gather(fs, timeout=120) == [2 * i for i in range(500)]
    err = capsys.readouterr().err
    assert "map _double:" in err and "gather:" in err and "/500 [" in err, err
    few = cluster.map(_double, range(5))  # short: no bar
    assert cluster.gather(few, timeout=60) == [0, 2, 4, 6, 8]
    assert capsys.readouterr().err == ""


def _pid_then_wait(folder, seconds):
    import os
    import time

    path = os.path.join(folder, f"try-{os.getpid()}")
    if any(name.startswith("try-") for name in os.listdir(folder)):
        open(path, "w").close()
        return "second try"
    open(path, "w").close()
    time.sleep(seconds)  # killed meanwhile
    return "first try"


def _wait_for_a_try(folder, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tries = [n for n in os.listdir(folder) if n.startswith("try-")]
        if tries:
            return int(tries[0].split("-")[1])
        time.sleep(0.05)
    raise AssertionError(f"no try of the task started within {timeout:g} s")


@pytest.mark.slow
def test_a_task_whose_rank_is_killed_mid_task_is_retried_on_the_other(cluster, tmp_path):
    f = cluster.submit(_pid_then_wait, str(tmp_path), 60, retries=1)
    pid = _wait_for_a_try(tmp_path)
    killed = next(p["rank"] for p in cluster.placement if p["pid"] == pid)
    os.kill(pid, signal.SIGKILL)
    try:
        assert f.result(120) == "second try"
        assert f.rank == 1 - killed
    finally:
        assert wait_gone([pid], 30)[0] == []
        cluster.restart(killed)


def _pid_each_try_then_wait(folder, seconds):
    import os
    import time

    open(os.path.join(folder, f"try-{os.getpid()}"), "w").close()
    time.sleep(seconds)  # killed meanwhile, on every try
    return "never"


def _wait_for_new_try(folder, seen, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = [int(n.split("-")[1]) for n in os.listdir(folder) if n.startswith("try-")]
        new = [pid for pid in new if pid not in seen]
        if new:
            return new[0]
        time.sleep(0.05)
    raise AssertionError(f"no new try of the task started within {timeout:g} s")


@pytest.mark.slow
def test_a_task_whose_rank_dies_on_every_try_names_every_rank_tried(cluster, tmp_path):
    f = cluster.submit(_pid_each_try_then_wait, str(tmp_path), 60, retries=1)
    pids = {p["pid"]: p["rank"] for p in cluster.placement}
    killed, ranks = [], []
    try:
        for _ in range(2):  # the first try, then the one retry
            pid = _wait_for_new_try(tmp_path, killed)
            killed.append(pid)
            ranks.append(pids[pid])
            os.kill(pid, signal.SIGKILL)
        error = f.exception(120)
        assert isinstance(error, TaskError), error
        assert sorted(error.tried) == sorted(ranks) == [0, 1], (error, error.tried, ranks)
        assert "on every rank tried: rank" in str(error), str(error)
        assert f"task {f.task} failed" in str(error)
    finally:
        assert wait_gone(killed, 30)[0] == []
        cluster.restart()


@pytest.mark.slow
def test_lost_kept_values_are_made_again_while_retries_allow_else_lost_data(cluster):
    def make(n):
        import numpy as np

        return np.arange(n) * 3

    once = cluster.submit(make, 5, keep=True, ranks=[1])
    again = cluster.submit(make, 7, keep=True, ranks=[1], retries=1)
    ref_once, ref_again = once.result(60), again.result(60)
    assert ref_once.rank == ref_again.rank == 1
    pid = cluster.placement[1]["pid"]
    os.kill(pid, signal.SIGKILL)
    try:
        assert wait_gone([pid], 30)[0] == []
        with pytest.raises(LostData, match=rf"task {once.task} kept on rank 1 is lost"):
            ref_once.get(60)
        assert ref_again.get(120).tolist() == [0, 3, 6, 9, 12, 15, 18]  # made again, on rank 0
        assert ref_again.rank == 0
        user = cluster.submit(_double, ref_once)
        with pytest.raises(LostData, match=once.task):
            user.result(60)
    finally:
        cluster.restart(1)


def _where():
    import lepton_nb

    return lepton_nb.rank()


@pytest.mark.slow
def test_with_one_rank_filled_memory_tasks_go_to_the_other(cluster):
    from lepton_nb.metrics import snapshot

    hog = 3 * 2**30
    cluster.execute(f"import numpy as np\nhog = np.ones({hog // 8})", ranks=[0])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # wait for a sample that shows it
            latest = cluster.collector.latest()
            if latest.get(0, {}).get("rss", 0) > hog * 0.9:
                break
            time.sleep(0.1)
        room = {r: snapshot.room(s, 2) for r, s in cluster.collector.latest().items()}
        assert room[1] - room[0] > 2 * 2**30, room
        ask = (room[0] + room[1]) // 2
        fs = [cluster.submit(_where, memory=ask) for _ in range(8)]
        assert [f.result(60) for f in fs] == [1] * 8
        assert {f.rank for f in fs} == {1}
        # more than any rank has: fails after the task timeout, giving the sizes
        cluster.task_timeout = 1.0
        with pytest.raises(TaskError, match=r"asked for memory=.*no rank had that much free within "
                                            r"1 s .*the most free was .* on rank 1"):
            cluster.submit(_where, memory="100TB").result(30)
    finally:
        cluster.task_timeout = 300.0
        cluster.execute("del hog", ranks=[0])
