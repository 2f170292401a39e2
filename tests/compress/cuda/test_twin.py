"""The CUDA twin against the CPU twin, run under the CUDA simulator in a subprocess."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lepton_nb.compress import TopK

TWINS = Path(__file__).with_name("cudasim_twins.py")


def _test_count() -> int:
    tree = ast.parse(TWINS.read_text())
    return sum(isinstance(n, ast.FunctionDef) and n.name.startswith("test_") for n in tree.body)


def test_twins_agree_under_the_cuda_simulator():
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", str(TWINS), "-q", "-p", "no:cacheprovider"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=TWINS.parents[3],
    )
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert re.search(rf"\b{_test_count()} passed\b", out), out
    assert "skipped" not in out and "xfail" not in out, out


def test_cuda_backend_needs_a_gpu_or_the_simulator():
    with pytest.raises(RuntimeError, match="no CUDA GPU was found"):
        TopK(0.1, backend="cuda").compress(__import__("numpy").ones(3, "float32"))
