"""Pinning an engine: one GPU or none, thread shares, the interface gloo uses."""

import os
import subprocess
import sys

SCRIPT = """
import json, os
from lepton_nb.engine import devices
out = devices.pin({gpu}, threads=3, ifname="lo", rank=1)
print(json.dumps([out, os.environ["CUDA_VISIBLE_DEVICES"], os.environ.get("OMP_NUM_THREADS"),
                  os.environ.get("NUMBA_NUM_THREADS"), os.environ.get("GLOO_SOCKET_IFNAME")]))
"""


def _pin(gpu, **env):
    clean = {k: v for k, v in os.environ.items()
             if k not in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "GLOO_SOCKET_IFNAME")}  # fmt: skip
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(gpu=gpu)], env={**clean, **env},
                         capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    import json

    return json.loads(out.stdout)


def test_a_cpu_rank_sees_no_gpu_and_gets_its_thread_share():
    out, visible, omp, numba, ifname = _pin(None)
    assert out["device"] == "cpu" and visible == "" and (omp, numba, ifname) == ("3", "3", "lo")


def test_a_gpu_rank_sees_exactly_its_gpu_and_user_settings_stay():
    out, visible, omp, numba, ifname = _pin(5, OMP_NUM_THREADS="7", GLOO_SOCKET_IFNAME="eth9")
    assert out == {"pid": out["pid"], "gpu": 5, "device": "cuda:0"} and visible == "5"
    assert (omp, numba, ifname) == ("7", "3", "eth9")  # what the user set is left alone


def test_usable_gpus_respects_a_binding():
    code = "from lepton_nb.engine import devices; print(devices.usable_gpus())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "CUDA_VISIBLE_DEVICES": "2,3"}, check=True)  # fmt: skip
    assert out.stdout.strip() == "([2, 3], True)"
