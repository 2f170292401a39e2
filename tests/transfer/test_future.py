import threading

import pytest

from lepton_nb.transfer import PushFuture


def test_future_done_wait_result():
    fut = PushFuture()
    assert not fut.done() and not fut.wait(0.01)
    with pytest.raises(TimeoutError, match="push not finished after 0.01 s"):
        fut.result(timeout=0.01)
    threading.Timer(0.05, fut.set_result).start()
    assert fut.wait(5) and fut.done()
    fut.result()
    assert repr(fut) == "<PushFuture done>"


def test_future_result_raises_the_push_error():
    fut = PushFuture()
    fut.set_exception(ValueError("rank 1 refused"))
    with pytest.raises(ValueError, match="rank 1 refused"):
        fut.result()
    assert repr(fut) == "<PushFuture failed>"


def test_sent_comes_before_done_and_a_failure_releases_both():
    fut = PushFuture()
    assert not fut.sent() and not fut.wait_sent(0.01)
    fut.set_sent()
    assert fut.sent() and fut.wait_sent(0) and not fut.done()
    failed = PushFuture()
    failed.set_exception(RuntimeError("no route"))
    assert failed.sent() and failed.done()
