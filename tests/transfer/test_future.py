import threading

import pytest

from lepton_nb.transfer import PushFuture


def test_future_done_wait_result():
    fut = PushFuture()
    assert not fut.done() and not fut.wait(0.01)
    with pytest.raises(TimeoutError, match="push not finished after 0.01 s"):
        fut.result(timeout=0.01)
    threading.Timer(0.05, fut._finish).start()
    assert fut.wait(5) and fut.done()
    fut.result()
    assert repr(fut) == "<PushFuture done>"


def test_future_result_raises_the_push_error():
    fut = PushFuture()
    fut._finish(ValueError("rank 1 refused"))
    with pytest.raises(ValueError, match="rank 1 refused"):
        fut.result()
    assert repr(fut) == "<PushFuture failed>"
