"""The monitor in a real ``lepton`` kernel, over real comm messages on IOPub and shell."""

import queue
import time

import pytest
from jupyter_client.manager import start_new_kernel

pytestmark = [pytest.mark.slow, pytest.mark.labextension]  # the widget's bundled front end


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


def _snapshots(seen, comm_id):
    """(time, snapshot) of each snapshot the widget sent on IOPub (anywidget custom messages)."""
    return [
        (t, m["content"]["data"]["content"])
        for t, m in seen
        if m["msg_type"] == "comm_msg"
        and m["content"]["comm_id"] == comm_id
        and m["content"]["data"].get("method") == "custom"
        and m["content"]["data"]["content"].get("type") == "snapshot"
    ]


def test_widget_sends_snapshots_while_a_cell_runs_and_survives_bad_messages(kernel):
    kc = kernel
    _, seen = _run(
        kc,
        "%lepton_cluster start -n 2 --gpus none\nw = %lepton_monitor --interval 0.25\ndisplay(w)",
    )
    ids = {
        m["content"]["comm_id"]
        for _, m in seen
        if m["msg_type"] == "comm_open"
        and "cluster_id" in m["content"]["data"].get("state", {})
        and m["content"]["data"]["state"].get("_model_name") == "AnyModel"
    }
    assert len(ids) == 1
    comm_id = ids.pop()

    # while a distributed cell runs, the widget keeps sending
    _, seen = _run(
        kc,
        "%%lepton_distributed\nimport numpy as np, time\n"
        "_m = np.ones(40_000_000)\ntime.sleep(2.5)\ndel _m",
    )
    during = _snapshots(seen, comm_id)
    assert len(during) >= 4, f"{len(during)} snapshots during a 2.5 s cell"
    memory = [s["ranks"][0]["series"]["memory"] for _, s in during]
    assert max(memory) - min(memory) > 200_000_000
    assert [s["seq"] for _, s in during] == sorted({s["seq"] for _, s in during})

    # malformed comm messages from the front end: logged by the kernel, nothing breaks
    for content in (
        {"comm_id": comm_id, "data": "garbage"},
        {"comm_id": comm_id, "data": {"method": "nope"}},
        {"comm_id": comm_id},
        {"comm_id": "no-such-comm", "data": {}},
        {"data": {"method": "update"}},
    ):
        kc.shell_channel.send(kc.session.msg("comm_msg", content))
    out, seen = _run(kc, "import time; time.sleep(1); print(w.running, w.sent > 0)")
    assert out.split() == ["True", "True"]
    assert _snapshots(seen, comm_id), "no snapshot after the malformed messages"

    # the front end closes the widget: the thread stops
    kc.shell_channel.send(kc.session.msg("comm_close", {"comm_id": comm_id, "data": {}}))
    out, _ = _run(kc, "w.wait(5); print(w.running)")
    assert out.strip() == "False"
    try:
        kc.get_iopub_msg(timeout=0.1)
    except queue.Empty:
        pass
