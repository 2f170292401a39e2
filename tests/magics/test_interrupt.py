"""Ctrl-C in a real kernel (jupyter_client's interrupt_kernel) during a distributed cell."""

import time

import pytest

from tests.support.kernels import lepton_kernel

CELL = """%%lepton_distributed
import pathlib, time
folder = pathlib.Path({folder!r})
(folder / f"started-{{rank}}").touch()
try:
    time.sleep(120)
except KeyboardInterrupt:
    (folder / f"interrupted-{{rank}}").write_text(repr(time.time()))
    raise
"""


def _wait_for(paths, timeout):
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        assert time.monotonic() < deadline, f"not there after {timeout} s: {[str(p) for p in paths]}"
        time.sleep(0.05)


@pytest.mark.alone  # times the interrupt
def test_ctrl_c_reaches_every_rank_within_2_s_raises_and_the_next_cell_works(tmp_path):
    with lepton_kernel() as k:
        k.run("%lepton_cluster start -n 2 --gpus none")
        msg_id = k.client.execute(CELL.format(folder=str(tmp_path)))
        _wait_for([tmp_path / f"started-{r}" for r in (0, 1)], 60)
        interrupted_at = time.time()
        k.km.interrupt_kernel()
        reply = k.client.get_shell_msg(timeout=60)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt", reply["content"]
        _wait_for([tmp_path / f"interrupted-{r}" for r in (0, 1)], 10)
        delays = [float((tmp_path / f"interrupted-{r}").read_text()) - interrupted_at for r in (0, 1)]
        assert all(0 <= d < 2.0 for d in delays), delays
        out = k.run("%%lepton_distributed --gather r\nr = rank * 10\nprint('after', rank)")
        assert "[rank 1] after 1" in out
        assert k.json("import json; print(json.dumps(r))") == [0, 10]
        k.run("%lepton_cluster stop")
