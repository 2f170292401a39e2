"""The package installs its JupyterLab extension and its server extension, and both load."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.labextension

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _jupyter(*args):
    out = subprocess.run(
        [sys.executable, "-m", "jupyter", *args], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return ANSI.sub("", out.stdout + out.stderr)


def test_labextension_list_shows_it_ok():
    out = _jupyter("labextension", "list")
    assert re.search(r"lepton-nb v0\.1\.0 enabled\s+OK \(python, lepton_nb\)", out), out


def test_server_extension_list_shows_it_ok():
    out = _jupyter("server", "extension", "list")
    assert re.search(r"lepton_nb\.server\s+enabled", out), out
    assert re.search(r"lepton_nb\.server\s+OK", out), out


def test_built_into_the_share_directory():
    share = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "lepton-nb"
    meta = json.loads((share / "package.json").read_text())
    assert meta["name"] == "lepton-nb" and (share / meta["jupyterlab"]["_build"]["load"]).exists()
    assert json.loads((share / "install.json").read_text())["packageName"] == "lepton_nb"
    config = Path(sys.prefix) / "etc" / "jupyter" / "jupyter_server_config.d" / "lepton_nb.json"
    assert json.loads(config.read_text())["ServerApp"]["jpserver_extensions"]["lepton_nb.server"]
