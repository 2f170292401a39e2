import subprocess
import sys

import numpy as np
import pytest

from lepton_nb.compress import FP16, Int8, TopK, dispatch, scatter_add
from lepton_nb.compress.dispatch import CPU_ON_CUDA, NO_CUDA


def test_importing_the_package_loads_neither_numba_nor_numba_cuda():
    code = (
        "import sys, lepton_nb.compress; "
        "print('numba.cuda' in sys.modules, 'lepton_nb.compress.cpu' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_auto_runs_host_data_on_the_cpu_twin():
    assert dispatch.twin("auto", on_cuda=False).NAME == "cpu"
    assert dispatch.twin("cpu", on_cuda=False).NAME == "cpu"


def test_the_cpu_backend_refuses_cuda_data():
    with pytest.raises(ValueError, match="backend='cpu' cannot work on CUDA tensors"):
        dispatch.twin("cpu", on_cuda=True)
    assert "'cuda' or 'auto'" in CPU_ON_CUDA


@pytest.mark.parametrize("c", [TopK(0.5, backend="cuda"), Int8(backend="cuda"), FP16("cuda")])
def test_backend_cuda_without_a_gpu_says_so_and_what_to_use(c):
    assert not dispatch.cuda_available()  # no GPU here, and no simulator in this process
    with pytest.raises(RuntimeError, match="no CUDA GPU was found.*use backend='cpu'"):
        c.compress(np.ones(4, np.float32))
    with pytest.raises(RuntimeError, match="no CUDA GPU was found"):
        scatter_add(np.zeros(2, np.float32), np.array([1]), np.array([1.0]), backend="cuda")
    assert "NUMBA_ENABLE_CUDASIM=1" in NO_CUDA
