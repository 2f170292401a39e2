"""A real ``jupyter lab`` on localhost and Debian's Chromium driven by Playwright.

No browser is ever downloaded: Playwright launches /usr/bin/chromium (``make
test`` installs it with apt-get), headless, with the flags a closed network needs.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
#: Seconds jupyter lab has to answer.
LAB_STARTUP_S = 90
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A running ``jupyter lab`` process: its URL, token and root directory."""

    def __init__(self, root: Path, runtime: Path) -> None:
        self.root = root
        self.runtime = runtime
        self.port = _free_port()
        self.token = uuid.uuid4().hex
        self.base = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(runtime))
        self.log = open(root / "jupyter-lab.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--no-browser",
                "--allow-root",
                "--ip=127.0.0.1",
                f"--port={self.port}",
                f"--ServerApp.token={self.token}",
                f"--ServerApp.root_dir={root}",
                "--LabApp.news_url=None",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                # tests/browser/test_stream.py publishes clusters of no kernel (tests/support/stream.py)
                "--LeptonMonitor.own_kernels_only=False",
                "--LeptonMonitor.poll_interval=0.25",
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + LAB_STARTUP_S
        while True:
            try:
                with urllib.request.urlopen(self.url("api/status"), timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = (root / "jupyter-lab.log").read_text()[-3000:]
                pytest.fail(f"jupyter lab did not answer within {LAB_STARTUP_S} s:\n{tail}")
            time.sleep(0.3)

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base}/{path}{sep}token={self.token}"

    def api(self, path: str) -> object:
        with urllib.request.urlopen(self.url(path), timeout=10) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


@pytest.fixture(scope="package")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    runtime = tmp_path_factory.mktemp("runtime")
    server = Lab(root, runtime)
    yield server
    server.stop()


@pytest.fixture(scope="package")
def browser():
    from playwright.sync_api import sync_playwright

    assert os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} is missing: make test installs it (apt-get)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def notebook(path: Path, *cells: str) -> Path:
    """Write a notebook of code cells on the ``lepton`` kernel."""
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "id": f"c{i}",
                "metadata": {},
                "outputs": [],
                "source": src,
            }
            for i, src in enumerate(cells)
        ],
        "metadata": {
            "kernelspec": {
                "display_name": "Python 3 (Lepton)",
                "language": "python",
                "name": "lepton",
            },
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(nb))
    return path
