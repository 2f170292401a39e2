"""In Debian's Chromium: alice logs in through the hub, runs a distributed cell in Lab, and her
Lepton panel shows her ranks and none of bob's."""

from __future__ import annotations

import pwd
import shutil
from pathlib import Path

import pytest

from tests.browser.conftest import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, notebook
from tests.support.lab import dismiss_news, open_monitor_panel, run_cell

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
            dismiss_news(page)
            open_monitor_panel(page)
            panel = page.locator("#lepton-monitor")
            for index in (0, 1):
                run_cell(page, index)
            page.locator(".jp-OutputArea-output", has_text="[rank 1] rank 1 of 2").wait_for(
                timeout=PANEL_TIMEOUT_MS
            )
            page.locator("#lepton-monitor tr.lepton-rank").nth(1).wait_for(timeout=PANEL_TIMEOUT_MS)
            panel.locator(".lepton-state-idle").nth(1).wait_for(timeout=PANEL_TIMEOUT_MS)
            assert panel.locator(".lepton-cluster").count() == 1  # hers alone
            assert panel.locator("tr.lepton-rank").count() == 2
            assert bob_id not in panel.inner_text()
            # the widget, too, under the hub's /user/alice/ URL
            page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=60_000)
            run_cell(page, 2)
            widget = page.locator(".jp-OutputArea .lepton-monitor")
            widget.locator("tr.lepton-rank").nth(1).wait_for(timeout=60_000)  # its first snapshot
            assert widget.locator("tr.lepton-rank").count() == 2
            assert bob_id not in widget.inner_text()
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "lepton-hub-alice-panel.png"))
        finally:
            browser.close()
