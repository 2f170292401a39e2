"""Session hooks for the whole run (tests/ and example_notebooks/).

The multi-host rig (tests/hosts/rig.py) is shared by the tests and by
example_notebooks/06_multi_host.ipynb, which nbval runs without fixtures: the
notebook's first cell brings the rig up here, and the session's end takes it
down, whatever failed.
"""

from __future__ import annotations

import pytest

RIG_NOTEBOOKS = ("06_multi_host.ipynb",)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if any(str(item.fspath).endswith(name) for name in RIG_NOTEBOOKS):
        from tests.hosts import rig

        try:
            rig.shared()
        except rig.RigUnavailable as e:
            pytest.skip(f"no multi-host rig here: {e}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    import sys

    rig = sys.modules.get("tests.hosts.rig")
    if rig is not None:
        rig.shutdown()
