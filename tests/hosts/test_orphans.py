"""No engine outlives its kernel on any host: SIGKILL the kernel of an ssh or Slurm cluster."""

from __future__ import annotations

import pytest

from tests.support.kernels import PROCESSES, lepton_kernel, wait_gone

from .conftest import options, wait_until_empty

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("launcher", ["ssh", "slurm"])
def test_a_killed_kernel_leaves_nothing_on_the_nodes(rig, launcher):
    kw = dict(options(launcher, rig), orphan_timeout=10.0)
    with lepton_kernel() as k:
        k.run(f"import lepton_nb\nc = lepton_nb.Cluster(**{kw!r}).start()")
        procs = k.json(PROCESSES)
        hosts = k.json("import json; print(json.dumps([p['host'] for p in c.placement]))")
        assert sorted(hosts) == ["node1", "node2"]
        k.kill()
        # the rig's nodes share this machine's pids, so the remote engines can be checked here
        left, waited = wait_gone(procs["engines"] + procs["here"], timeout=60)
    assert left == [], f"still running {waited:.0f} s after the kernel died: {left}"
    assert wait_until_empty(rig) == {}  # nothing on either node, no job in the queue
