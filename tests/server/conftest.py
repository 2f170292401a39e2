"""A real Jupyter server with the lepton extension (pytest-jupyter), for tests/server only."""

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403  (fixtures and async test hooks)

#: Seconds the server waits between two scans of the runtime directory, in tests.
POLL = 0.2


@pytest.fixture
def own_kernels_only():
    """Follow only clusters of this server's kernels (the default); False in some tests."""
    return True


@pytest.fixture
def allow_unauthenticated_access():
    """jupyter_server's global switch; the routes must refuse strangers either way."""
    return True


@pytest.fixture
def jp_server_config(own_kernels_only, allow_unauthenticated_access):
    return {
        "ServerApp": {
            "jpserver_extensions": {"lepton_nb.server": True, "jupyter_server_terminals": False},
            "allow_unauthenticated_access": allow_unauthenticated_access,
        },
        "LeptonMonitor": {"own_kernels_only": own_kernels_only, "poll_interval": POLL},
    }
