"""The session cluster's health check: what makes the fixture replace it after a test."""

import os
import signal

from tests.conftest import health
from tests.support.kernels import wait_gone


def test_health_names_what_is_broken_and_passes_a_healthy_cluster(make_cluster):
    c = make_cluster(n=2)
    assert health(c) is None
    pid = c.placement[1]["pid"]
    os.kill(pid, signal.SIGKILL)
    assert wait_gone([pid], 30)[0] == [], "the killed engine is still there"
    assert "Rank 1's engine is gone" in health(c)
    c.restart(1)
    assert health(c) is None
    c.scale(1)
    assert health(c) == "it has 1 ranks, not 2"
    c.stop()
    assert health(c) == "it is not running"
