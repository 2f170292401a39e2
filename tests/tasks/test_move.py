"""Kept values that a task needs on another rank move rank to rank, never through the notebook
(one host: shared memory; across hosts: tests/hosts/test_contract.py)."""

import numpy as np

from tests.tasks.test_ref import _keys, _make, _total, _wait_until


def _held(cluster):
    from lepton_nb.tasks import move

    return cluster.run(move.held)


def _link(cluster, src, dst):
    return cluster.link_bytes().get((src, dst), 0)


def test_a_kept_value_needed_on_another_rank_moves_rank_to_rank_not_through_the_notebook(cluster):
    ref = cluster.submit(_make, 3, 1_000_000, keep=True, ranks=[0]).result(60)  # 8 MB on rank 0
    to_1, from_notebook = _link(cluster, 0, 1), _link(cluster, -1, 1)
    total, rank, pid = cluster.submit(_total, ref, ranks=[1]).result(60)
    assert rank == 1 and pid == cluster.placement[1]["pid"]
    assert abs(total - np.random.default_rng(3).standard_normal(1_000_000).sum()) < 1e-6
    # one host: rank 0 wrote it into shared memory once, rank 1 mapped it
    assert _link(cluster, 0, 1) - to_1 >= 8_000_000
    assert _link(cluster, -1, 1) - from_notebook < 100_000  # the task, not the array
    assert _wait_until(lambda: _held(cluster) == [0, 0]), "rank 0 still holds the offer"
    assert ref.rank == 0 and ref.kept.key in _keys(cluster)  # the value stays where it was made


def test_a_task_reading_values_kept_on_two_ranks_runs_where_most_bytes_are(cluster):
    big = cluster.submit(_make, 4, 500_000, keep=True, ranks=[1]).result(60)
    small = cluster.submit(_make, 5, 1000, keep=True, ranks=[0]).result(60)
    out = cluster.submit(_sum_both, big, small).result(60)
    assert out[1] == 1  # the rank holding 4 MB, not the one holding 8 kB
    expected = np.random.default_rng(4).standard_normal(500_000).sum()
    expected += np.random.default_rng(5).standard_normal(1000).sum()
    assert abs(out[0] - expected) < 1e-6


def _sum_both(a, b):
    import lepton_nb

    return float(a.sum() + b.sum()), lepton_nb.rank()



def _busy(seconds, marker):
    import pathlib
    import time

    pathlib.Path(marker).touch()  # it started
    time.sleep(seconds)
    return seconds


def test_a_holder_too_busy_to_offer_fails_the_task_after_the_task_timeout(cluster, tmp_path):
    ref = cluster.submit(_make, 6, 1000, keep=True, ranks=[0]).result(60)
    started = tmp_path / "started"
    busy = cluster.submit(_busy, 6, str(started), ranks=[0])
    assert _wait_until(started.exists), "the busy task did not start on rank 0"
    cluster.task_timeout = 2
    try:
        f = cluster.submit(_total, ref, ranks=[1])
        err = f.exception(30)
        assert err is not None and err.ename == "CannotMove" and err.rank == 0
        assert ref.kept.key in str(err) and "within 2 s" in str(err) and "task_timeout" in str(err)
        assert not busy.done()  # it failed while the holder was still busy, not after
    finally:
        cluster.task_timeout = 300
    assert busy.result(60) == 6
    total, rank, _ = cluster.submit(_total, ref, ranks=[1]).result(60)  # and then it moves
    assert rank == 1 and abs(total - np.random.default_rng(6).standard_normal(1000).sum()) < 1e-9
    assert _wait_until(lambda: _held(cluster) == [0, 0]), "an offer was left held"


def _a_lock():
    import threading

    return threading.Lock()


def _is_kept(value):
    return type(value).__name__


def test_a_kept_value_that_cannot_be_pickled_fails_the_reader_with_cannot_move(cluster):
    from lepton_nb import TaskError

    ref = cluster.submit(_a_lock, keep=True, ranks=[0]).result(60)  # kept: it never left rank 0
    assert cluster.submit(_is_kept, ref, ranks=[0]).result(60) == "lock"  # read in place
    f = cluster.submit(_is_kept, ref, ranks=[1])
    error = f.exception(60)
    assert isinstance(error, TaskError) and error.ename == "CannotMove", error
    assert f"kept value {ref.kept.key} on rank 0 could not move to rank 1" in str(error)
    assert "pickle" in str(error).lower(), str(error)
    assert _wait_until(lambda: _held(cluster) == [0, 0]), "rank 0 still holds the offer"
    assert cluster.submit(_is_kept, ref, ranks=[0]).result(60) == "lock"  # still usable there
