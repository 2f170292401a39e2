"""Every way a multi-host start can fail says what happened and what to do, and never hangs.

Each case is real: a partition too small for the job, an SSH port nobody
listens on, a node whose route to the controller is cut, an engine from a
second environment with another lepton_nb, a machine without Slurm.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

import lepton_nb
from lepton_nb import ClusterError

from .conftest import options, wait_until_empty
from .rig import CONTROLLER_ADDR, SECOND_ADDR

pytestmark = pytest.mark.slow


def _start(**kw):
    c = lepton_nb.Cluster(**kw)
    try:
        c.start()
    finally:
        c.stop()
    return c


def test_slurm_without_sbatch_on_path(monkeypatch):
    path = [d for d in os.environ["PATH"].split(os.pathsep) if not os.path.exists(f"{d}/sbatch")]
    monkeypatch.setenv("PATH", os.pathsep.join(path))
    assert shutil.which("sbatch") is None
    with pytest.raises(ClusterError, match="launcher='slurm' needs Slurm's sbatch on PATH"):
        lepton_nb.Cluster(launcher="slurm", nodes=2).start()


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"launcher": "slurm", "nodes": 2, "n": 3}, "n=3 does not match nodes=2 x ranks_per_node=1"),
        ({"launcher": "slurm", "time": "soon"}, "time must be a Slurm time limit"),
        ({"launcher": "slurm", "hosts": {"a": 1}}, "hosts belongs to launcher='ssh'"),
        ({"launcher": "ssh"}, "launcher='ssh' needs hosts"),
        ({"launcher": "ssh", "hosts": {"a": 0}}, "hosts must map host names to a number of ranks"),
        ({"launcher": "ssh", "hosts": {"a": 1}, "nodes": 2}, "nodes belongs to launcher='slurm'"),
        ({"launcher": "local", "nodes": 2}, "nodes belongs to launcher='slurm'"),
        ({"launcher": "mpi"}, "unknown launcher 'mpi': use one of local, slurm, ssh"),
    ],
)
def test_bad_options_are_refused_before_anything_starts(kw, message):
    c = lepton_nb.Cluster(**kw)
    with pytest.raises(ClusterError, match=message.replace("(", r"\(")):
        c.start()
    assert not c.running and c.runtime_files == []


def test_a_job_still_pending_is_cancelled_with_slurms_reason(rig):
    # three nodes from a two-node partition: Slurm accepts the job, and it waits for ever
    start = time.monotonic()
    with pytest.raises(ClusterError) as info:
        _start(**dict(options("slurm", rig), nodes=3, engine_timeout=6.0))
    msg = str(info.value)
    assert "still pending after" in msg and "squeue's reason: PartitionNodeLimit" in msg
    assert "it was cancelled" in msg and "ask for fewer nodes" in msg
    assert time.monotonic() - start < 30
    assert wait_until_empty(rig) == {}  # the job left the queue


def test_sbatch_refusing_the_job_is_shown(rig):
    # the rig's nodes have no GPUs: Slurm refuses --gpus-per-node at submission
    with pytest.raises(ClusterError, match="sbatch refused the job: sbatch: error: .*") as info:
        _start(**dict(options("slurm", rig), gpus_per_node=1, ranks_per_node=1))
    assert "gres" in str(info.value).lower() or "generic resource" in str(info.value).lower()


def test_an_ssh_host_that_refuses_is_named_with_sshs_error(rig):
    with pytest.raises(ClusterError) as info:
        _start(**dict(options("ssh", rig), hosts={"node1": 1, "node2:2222": 1}))
    msg = str(info.value)
    assert "could not start engines on node2:2222 over ssh" in msg
    assert "Connection refused" in msg
    assert wait_until_empty(rig) == {}  # node1's engine was stopped too


def test_an_ssh_host_that_does_not_answer_is_named_with_sshs_error(rig):
    # node2 cannot route its replies to this machine: ssh's connection attempt times out
    start = time.monotonic()
    with rig.unreachable("node2", CONTROLLER_ADDR), pytest.raises(ClusterError) as info:
        _start(**options("ssh", rig))
    msg = str(info.value)
    assert "could not start engines on node2 over ssh" in msg and "timed out" in msg.lower(), msg
    assert time.monotonic() - start < 60
    assert wait_until_empty(rig) == {}


def test_an_engine_that_cannot_reach_the_controller_names_its_host_and_the_address(rig):
    for launcher in ("ssh", "slurm"):
        start = time.monotonic()
        kw = dict(options(launcher, rig), engine_timeout=45.0, controller_ip=SECOND_ADDR)
        with rig.unreachable("node2"), pytest.raises(ClusterError) as info:
            _start(**kw)
        msg = str(info.value)
        assert f"on node2 could not reach the controller at {SECOND_ADDR}" in msg, msg
        assert "registration timed out" in msg
        assert time.monotonic() - start < 40  # seen when the engine gives up, not at the timeout
        assert wait_until_empty(rig) == {}


@pytest.fixture(scope="module")
def other_environment(tmp_path_factory):
    """A second Python environment whose lepton_nb is another version (everything else shared)."""
    import site

    root = tmp_path_factory.mktemp("old-env")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True,
                   timeout=120)  # fmt: skip
    pure = subprocess.run([str(root / "bin" / "python"), "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True, timeout=60).stdout.strip()  # fmt: skip
    package = os.path.dirname(lepton_nb.__file__)
    shutil.copytree(package, os.path.join(pure, "lepton_nb"),
                    ignore=shutil.ignore_patterns("__pycache__", "labextension"))  # fmt: skip
    init = os.path.join(pure, "lepton_nb", "__init__.py")
    with open(init) as f:
        text = f.read()
    with open(init, "w") as f:
        f.write(text.replace(f'__version__ = "{lepton_nb.__version__}"', '__version__ = "0.0.1"'))
    ours = site.getsitepackages()[0]
    with open(os.path.join(pure, "zz_shared.pth"), "w") as f:  # the rest: this environment's packages
        f.write(f"import site; site.addsitedir({ours!r})\n")
    return str(root / "bin" / "python")


def test_an_engine_running_another_version_is_refused(rig, other_environment):
    out = subprocess.run([other_environment, "-c", "import lepton_nb; print(lepton_nb.__version__)"],
                         capture_output=True, text=True, timeout=60, cwd="/")  # fmt: skip
    assert out.stdout.strip() == "0.0.1", out.stderr
    with pytest.raises(ClusterError) as info:
        _start(**dict(options("ssh", rig), python=other_environment))
    msg = str(info.value)
    assert "an engine was refused: the engine on node" in msg
    assert f"runs lepton_nb 0.0.1, but the notebook runs {lepton_nb.__version__}" in msg
    assert wait_until_empty(rig) == {}
