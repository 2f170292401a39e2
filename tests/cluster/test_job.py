"""cluster/job.py: the one place that uses ipyparallel's private API, pinned and checked."""

from __future__ import annotations

import pathlib

import ipyparallel
import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

import lepton_nb
from lepton_nb.cluster.job import TESTED_IPYPARALLEL, Job, check_client

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_the_installed_ipyparallel_is_a_tested_release_and_pyproject_pins_it():
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+")
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (pin,) = [Requirement(d) for d in deps if Requirement(d).name == "ipyparallel"]
    assert pin.specifier == SpecifierSet(TESTED_IPYPARALLEL)
    assert ipyparallel.__version__ in SpecifierSet(TESTED_IPYPARALLEL), (
        f"ipyparallel {ipyparallel.__version__} is not a release cluster/job.py is tested with "
        f"({TESTED_IPYPARALLEL}): check Client._build_targets and Client._mux_stream, then widen the pin"
    )


def test_a_client_of_this_release_has_what_job_uses_and_a_job_runs_on_it(cluster):
    check_client(cluster.client)
    job = Job(cluster.client).apply(cluster.engines([0, 1]), lambda: 6 * 7)
    assert job.wait(30)
    assert job.outcome().results == {0: 42, 1: 42}


def test_a_client_without_that_api_is_refused_naming_what_is_missing(cluster):
    (url_file,) = [f for f in cluster.runtime_files if f.endswith("-client.json")]
    client = ipyparallel.Client(url_file)
    try:
        stream = client._mux_stream
        del client._mux_stream  # as a release without it would be
        with pytest.raises(lepton_nb.ClusterError) as err:
            Job(client)
        message = str(err.value)
        assert "Client._mux_stream" in message and ipyparallel.__version__ in message
        assert f"pip install 'ipyparallel{TESTED_IPYPARALLEL}'" in message
    finally:
        client._mux_stream = stream
        client.close()
