"""In Debian's Chromium: alice logs in through the hub, runs a distributed cell in Lab, and her
Lepton panel shows her ranks and none of bob's."""

from __future__ import annotations

import pwd
import shutil
from pathlib import Path

import pytest

from tests.browser.conftest import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, notebook

pytestmark = [pytest.mark.slow, pytest.mark.labextension]

PANEL_TIMEOUT_MS = 120_000


def test_alice_sees_her_ranks_and_not_bobs(hub, kernel):
    from playwright.sync_api import sync_playwright

    bob = kernel("bob")
    bob.run("%lepton_cluster start -n 1")  # a cluster alice must not see
    bob_id = bob.run("import lepton_nb; print(lepton_nb.get_cluster().cluster_id)").strip()
    home = Path(pwd.getpwnam("alice").pw_dir)
    nb = notebook(home / "hub.ipynb", "%lepton_cluster start -n 2",
                  "%%lepton_distributed --gather where\nimport socket\nwhere = socket.gethostname()\n"
                  "print('rank', rank, 'of', world_size)", "%lepton_monitor")  # fmt: skip
    shutil.chown(nb, "alice", "alice")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 900})
            page.goto(hub.url + "/hub/login")
            page.locator("input[name=username]").fill("alice")
            page.locator("input[name=password]").fill(hub.password)
            page.locator("input[name=password]").press("Enter")
            page.wait_for_url("**/user/alice/**", timeout=90_000)
            page.goto(hub.url + "/user/alice/lab/tree/hub.ipynb")
            page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=90_000)
            page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=90_000)
            for text in ("No", "Dismiss"):  # JupyterLab's news toast, if it shows
                try:
                    page.get_by_role("button", name=text, exact=True).click(timeout=2000)
                except Exception:
                    pass
            page.keyboard.press("Control+Shift+C")
            page.locator(".lm-CommandPalette-input").fill("Lepton: Open cluster monitor")
            page.locator(".lm-CommandPalette-item.lm-mod-active[data-command='lepton:open-monitor']"
                         ).wait_for(timeout=30_000)  # fmt: skip
            page.locator(".lm-CommandPalette-input").press("Enter")
            panel = page.locator("#lepton-monitor")
            panel.wait_for(state="visible", timeout=30_000)
            for index in (0, 1):
                cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
                cell.locator(".jp-InputArea-editor").click()
                page.keyboard.press("Shift+Enter")
            page.locator(".jp-OutputArea-output", has_text="[rank 1] rank 1 of 2").wait_for(
                timeout=PANEL_TIMEOUT_MS
            )
            page.locator("#lepton-monitor .lepton-rank").nth(1).wait_for(timeout=PANEL_TIMEOUT_MS)
            panel.locator(".lepton-state-idle").nth(1).wait_for(timeout=PANEL_TIMEOUT_MS)
            assert panel.locator(".lepton-cluster").count() == 1  # hers alone
            assert panel.locator(".lepton-rank").count() == 2
            assert bob_id not in panel.inner_text()
            # the widget, too, under the hub's /user/alice/ URL
            page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=60_000)
            cell = page.locator(".jp-Notebook .jp-Cell").nth(2)
            cell.locator(".jp-InputArea-editor").click()
            page.keyboard.press("Shift+Enter")
            widget = page.locator(".jp-OutputArea .lepton-monitor")
            widget.wait_for(timeout=60_000)
            assert widget.locator(".lepton-rank").count() == 2
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "lepton-hub-alice-panel.png"))
        finally:
            browser.close()
