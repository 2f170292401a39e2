"""The session cluster's health check: what makes the fixture replace it after a test."""

import os
import signal

import psutil

from tests.conftest import health


def test_health_names_what_is_broken_and_passes_a_healthy_cluster(make_cluster):
    c = make_cluster(n=2)
    assert health(c) is None
    pid = c.placement[1]["pid"]
    os.kill(pid, signal.SIGKILL)
    psutil.Process(pid).wait(30)
    assert "Rank 1's engine is gone" in health(c)
    c.restart(1)
    assert health(c) is None
    c.scale(1)
    assert health(c) == "it has 1 ranks, not 2"
    c.stop()
    assert health(c) == "it is not running"
