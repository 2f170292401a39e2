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

import pytest

_ipython_dir = tempfile.mkdtemp(prefix="lepton-ipython-")


def pytest_configure(config: pytest.Config) -> None:
    # a temporary IPYTHONDIR, before IPython or ipyparallel look for a profile; kernels inherit it
    os.environ["IPYTHONDIR"] = _ipython_dir


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_ipython_dir, ignore_errors=True)

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
