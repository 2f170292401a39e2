"""Session hooks for the whole run (tests/ and example_notebooks/).

The multi-host rig (tests/hosts/rig.py) is shared by the tests and by
example_notebooks/08_multi_host.ipynb, which nbval runs without fixtures: the
notebook's first cell brings the rig up here, and the session's end takes it
down, whatever failed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

import pytest

_ipython_dir = tempfile.mkdtemp(prefix="lepton-ipython-")
_runtime_dir = tempfile.mkdtemp(prefix="lepton-runtime-")

#: What one pytest-xdist worker runs, all of it, first: the tests that share the multi-host
#: rig, the hub and its Unix users (the rig is one per machine).
RIG_GROUP = ("tests/hosts/", "tests/hub/", "example_notebooks/08_multi_host.ipynb")
#: The longest single files, sent to the workers next, so none is left for the end.
LONGEST = (
    "tests/cluster/test_cycles.py",
    "tests/compress/cuda/test_twin.py",
    "tests/browser/test_lab.py",
    "tests/cluster/test_lease.py",
)


def pytest_configure(config: pytest.Config) -> None:
    # a temporary IPYTHONDIR, before IPython or ipyparallel look for a profile; kernels inherit
    # it; and a runtime folder of its own, so each run (each xdist worker) lists its own clusters
    os.environ["IPYTHONDIR"] = _ipython_dir
    os.environ["JUPYTER_RUNTIME_DIR"] = _runtime_dir


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_ipython_dir, ignore_errors=True)
    shutil.rmtree(_runtime_dir, ignore_errors=True)


def _group(path: str) -> str:
    return "rig" if path.startswith(RIG_GROUP) else path


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``pytest -n N`` (make test): a file's tests go to one worker, the rig's and hub's to one.

    A file's module fixtures and a notebook's cells then stay together. This is
    xdist's own scheduler of scopes (``--dist loadscope``), with the scope named here.
    """
    from xdist.scheduler import LoadScopeScheduling

    class ByFile(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _group(nodeid.split("::", 1)[0])

    return ByFile(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On an xdist worker, the rig's group and the longest files go out first."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return
    root = str(config.rootpath) + os.sep

    def order(item: pytest.Item) -> int:
        path = str(item.path).removeprefix(root)
        return 0 if _group(path) == "rig" else 1 if path in LONGEST else 2

    items.sort(key=order)  # stable: the order within a file is kept


RIG_NOTEBOOKS = ("08_multi_host.ipynb",)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if any(str(item.fspath).endswith(name) for name in RIG_NOTEBOOKS):
        from tests.hosts import rig

        try:
            site_config(rig.shared())
        except rig.RigUnavailable as e:
            pytest.skip(f"no multi-host rig here: {e}")


def site_config(rig) -> None:  # noqa: ANN001 - tests.hosts.rig.Rig
    """What a site admin would configure for the rig, in the session's IPython profile.

    Kernels started from here read it: ``c.Cluster.*`` are the cluster defaults.
    """
    from IPython.paths import get_ipython_dir

    profile = os.path.join(get_ipython_dir(), "profile_default")
    os.makedirs(profile, exist_ok=True)
    path = os.path.join(profile, "ipython_config.py")
    line = f"c.Cluster.ssh_args = {rig.ssh_args!r}  # the rig's ssh configuration\n"
    with open(path, "a+") as f:
        f.seek(0)
        if line not in f.read():
            f.write(line)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    import sys

    rig = sys.modules.get("tests.hosts.rig")
    if rig is not None:
        rig.shutdown()

