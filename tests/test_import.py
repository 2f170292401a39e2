"""What ``import lepton_nb`` costs on an engine, measured with ``python -X importtime``."""

from __future__ import annotations

import subprocess
import sys

import pytest

#: Notebook-only parts an engine never needs.
NOTEBOOK_ONLY = ("ipywidgets", "jupyter_server", "lepton_nb.server", "lepton_nb.monitor")


def imported(statement: str) -> dict[str, int]:
    """Module -> cumulative microseconds, as ``-X importtime`` reports for a fresh interpreter."""
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    found = {}
    for line in run.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _self, cumulative, name = line.removeprefix("import time:").split("|")
            if cumulative.strip().isdigit():
                found[name.strip()] = int(cumulative)
    return found


def test_import_lepton_nb_is_light():
    found = imported("import lepton_nb")
    assert "lepton_nb" in found
    heavy = [m for m in (*NOTEBOOK_ONLY, "torch", "ipyparallel", "numba") if m in found]
    assert not heavy, f"import lepton_nb imported {heavy}"


@pytest.mark.parametrize(
    "statement",
    [
        "import lepton_nb.engine.identity, lepton_nb.engine.devices, lepton_nb.engine.group",
        "import lepton_nb.transfer.receive",
        "import lepton_nb.metrics.sampler",
        "import lepton_nb.collective",
        "import lepton_nb.train.rank",
    ],
)
def test_what_a_rank_imports_leaves_out_the_notebook_parts(statement):
    found = imported(statement)
    assert not [m for m in NOTEBOOK_ONLY if m in found], statement
