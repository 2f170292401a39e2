"""The monitor in a real ``lepton`` kernel, over real comm messages on IOPub and shell."""

import queue
import re
import time

import pytest
from jupyter_client.manager import start_new_kernel

pytestmark = pytest.mark.slow


@pytest.fixture
def kernel(tmp_path):
    km, kc = start_new_kernel(kernel_name="lepton", cwd=str(tmp_path), startup_timeout=120)
    yield kc
    try:
        kc.execute_interactive("%lepton_cluster stop", timeout=60)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def _run(kc, code, timeout=120):
    """Execute ``code``; return (stdout, iopub messages seen meanwhile)."""
    seen, out = [], []

    def hook(msg):
        seen.append((time.monotonic(), msg))
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])

    reply = kc.execute_interactive(code, timeout=timeout, output_hook=hook)
    assert reply["content"]["status"] == "ok", reply["content"]
    return "".join(out), seen


def _updates(seen, comm_id):
    return [
        (t, m["content"]["data"]["state"]["value"])
        for t, m in seen
        if m["msg_type"] == "comm_msg"
        and m["content"]["comm_id"] == comm_id
        and "value" in m["content"]["data"].get("state", {})
    ]


def _rank0_memory(value):
    return int(re.search(r'data-rank="0".*?data-bytes="(\d+)"', value, re.S).group(1))


def test_widget_updates_while_a_cell_runs_and_survives_bad_messages(kernel):
    kc = kernel
    _, seen = _run(
        kc,
        "%lepton_cluster start -n 2 --gpus none\nw = %lepton_monitor --interval 0.25\ndisplay(w)",
    )
    ids = {
        m["content"]["comm_id"]
        for _, m in seen
        if m["msg_type"] == "comm_msg"
        and "lepton-monitor" in str(m["content"]["data"].get("state", {}).get("value"))
    }
    assert len(ids) == 1
    comm_id = ids.pop()
    before = _rank0_memory(_updates(seen, comm_id)[-1][1])

    # while a distributed cell runs, the widget keeps moving
    _, seen = _run(
        kc,
        "%%lepton_distributed\nimport numpy as np, time\n"
        "_m = np.ones(40_000_000)\ntime.sleep(2.5)\ndel _m",
    )
    during = _updates(seen, comm_id)
    assert len(during) >= 4, f"{len(during)} updates during a 2.5 s cell"
    assert max(_rank0_memory(v) for _, v in during) - before > 200_000_000

    # malformed comm messages from the front end: logged by the kernel, nothing breaks
    for content in (
        {"comm_id": comm_id, "data": "garbage"},
        {"comm_id": comm_id, "data": {"method": "nope"}},
        {"comm_id": comm_id},
        {"comm_id": "no-such-comm", "data": {}},
        {"data": {"method": "update"}},
    ):
        kc.shell_channel.send(kc.session.msg("comm_msg", content))
    out, seen = _run(
        kc, "import time; time.sleep(1); print(w.running, w.value.count('class=\"lepton-rank\"'))"
    )
    assert out.split() == ["True", "2"]
    assert _updates(seen, comm_id), "no update after the malformed messages"

    # the front end closes the widget: the thread stops
    kc.shell_channel.send(kc.session.msg("comm_close", {"comm_id": comm_id, "data": {}}))
    out, _ = _run(kc, "w.wait(5); print(w.running)")
    assert out.strip() == "False"
    try:
        kc.get_iopub_msg(timeout=0.1)
    except queue.Empty:
        pass
