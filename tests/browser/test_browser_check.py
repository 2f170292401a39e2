"""``python -m jupyterlab.browser_check`` passes with the extension installed.

browser_check would download a browser (``npx playwright install``). Here it
runs unchanged, but its ``browser_test`` folder gets Playwright from the
Python package (a link to its bundled driver), ``npx playwright install`` is
a no-op shim, and a Node preload points ``chromium.launch`` at Debian's
Chromium: its own page check runs, against our extension, with no download.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.slow, pytest.mark.labextension]

NPX_SHIM = """#!/bin/sh
# browser_check runs `npx playwright install <browser>`: never download one
if [ "$1" = "playwright" ] && [ "$2" = "install" ]; then exit 0; fi
exec {npx} "$@"
"""

PRELOAD = """
const Module = require('module');
const load = Module._load;
Module._load = function (request) {{
  const mod = load.apply(this, arguments);
  if (request === 'playwright' && !mod.__debianChromium) {{
    const launch = mod.chromium.launch.bind(mod.chromium);
    mod.chromium.launch = (options = {{}}) =>
      launch({{ ...options, executablePath: {exe!r}, args: [...(options.args || []), ...{args}] }});
    mod.__debianChromium = true;
  }}
  return mod;
}};
"""


def _check(args, env, timeout=240):
    proc = subprocess.run(
        [sys.executable, "-m", "jupyterlab.browser_check", "--allow-root", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture
def env(tmp_path):
    return dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))


def test_browser_check_server_side(env):
    rc, out = _check(["--no-browser-test"], env)
    assert rc == 0, out[-3000:]
    assert "lepton_nb.server" in out or "lepton" in out.lower()


def test_browser_check_in_debian_chromium(env, tmp_path):
    import playwright
    from jupyterlab.commands import get_app_dir

    driver = Path(playwright.__file__).parent / "driver" / "package"
    modules = Path(get_app_dir()) / "browser_test" / "node_modules"
    modules.mkdir(parents=True, exist_ok=True)
    link = modules / "playwright"
    if not link.exists():
        link.symlink_to(driver, target_is_directory=True)
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "npx").write_text(NPX_SHIM.format(npx=shutil.which("npx")))
    (shim / "npx").chmod(0o755)
    preload = tmp_path / "debian-chromium.js"
    preload.write_text(PRELOAD.format(exe=CHROMIUM, args=CHROMIUM_ARGS))
    env = dict(env, PATH=f"{shim}:{env['PATH']}", NODE_OPTIONS=f"--require {preload}")
    rc, out = _check([], env)
    assert rc == 0, out[-4000:]
    assert "Browser test complete" in out
