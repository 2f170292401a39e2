"""No engine outlives its kernel: SIGKILL the kernel, and engines and controller are gone."""

import pytest

from tests.support.kernels import PROCESSES, lepton_kernel, wait_gone

pytestmark = pytest.mark.slow


def test_a_killed_kernel_leaves_no_engine_or_controller_within_the_default_timeout():
    with lepton_kernel() as k:
        k.run("%lepton_cluster start -n 2 --gpus none")
        assert k.run("import lepton_nb; print(lepton_nb.get_cluster().orphan_timeout)").strip() == "30.0"
        procs = k.json(PROCESSES)
        # busy in a long cell on one rank, idle on the other: both must go
        k.run("lepton_nb.get_cluster().client[:].execute('import time; time.sleep(600)', block=False)")
        assert len(procs["engines"]) == 2 and len(procs["here"]) > 4  # engines, nannies, controller
        k.kill()
        left, waited = wait_gone(procs["here"] + procs["engines"], timeout=60)
    assert left == [], f"still running {waited:.0f} s after the kernel died: {left}"
    assert waited < 45, waited  # 30 s of silence, then each engine exits at once
