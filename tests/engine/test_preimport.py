"""Importing torch while an engine registers: the import is done before pinning goes on."""

import json
import subprocess
import sys

SCRIPT = """
import json, sys, threading
from lepton_nb.engine import devices, preimport
before = "torch" in sys.modules
preimport.start()
preimport.start()  # once per process
names = [t.name for t in threading.enumerate()].count("lepton-import-torch")
out = devices.pin(None, threads=1, rank=0)  # waits for the import, then shares the cores
import threadpoolctl, torch
blas = {p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"}
print(json.dumps([before, names, torch.cuda.is_initialized(), torch.get_num_threads(), sorted(blas)]))
"""


def test_pin_waits_for_the_early_import_and_gives_torch_and_blas_their_share():
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}  # no OMP_NUM_THREADS: the share applies
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True,
                         timeout=120, check=True)  # fmt: skip
    before, names, cuda, threads, blas = json.loads(out.stdout)
    assert before is False and names <= 1  # one thread at most (it may have ended already)
    assert cuda is False  # importing torch early initialized no CUDA: the GPU is still free
    assert threads == 1 and blas == [1]


def test_an_engine_without_torch_is_left_to_the_real_import():
    code = (
        "import sys; sys.modules['torch'] = None\n"  # import torch raises ImportError
        "from lepton_nb.engine import preimport; preimport.start(); preimport.wait(10)\n"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)  # fmt: skip
    assert out.stdout.strip() == "ok" and "Traceback" not in out.stderr


def test_a_blas_thread_count_set_at_launch_is_left_alone():
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "OPENBLAS_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True,
                         timeout=120, check=True)  # fmt: skip
    *_, threads, blas = json.loads(out.stdout)
    assert threads == 1 and blas == [2]  # torch gets the share; BLAS keeps what the user set
