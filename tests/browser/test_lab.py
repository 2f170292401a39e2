"""End to end: jupyter lab, a notebook on the lepton kernel, a 2-rank cluster, the sidebar panel."""

import re
import time

import pytest

from tests.support.lab import dismiss_news, open_monitor_panel, run_cell, screenshot_on_failure

from .conftest import ARTIFACTS, notebook

pytestmark = [pytest.mark.slow, pytest.mark.labextension]

#: Seconds for the panel to reflect the cluster (engines start, samples flow).
PANEL_TIMEOUT_MS = 120_000


def _memory(page, rank):
    bar = page.locator(f'#lepton-monitor .lepton-rank[data-rank="{rank}"] .lepton-memory')
    return int(bar.get_attribute("data-bytes"))


def _widget_has_two_ranks(page):
    widget = page.locator(".jp-OutputArea .lepton-monitor")
    widget.wait_for(timeout=30_000)
    assert widget.locator(".lepton-rank").count() == 2
    first = widget.inner_text()
    page.wait_for_timeout(1500)
    assert widget.inner_text() != first  # it redraws (the time, the figures)


def test_panel_shows_ranks_and_rising_memory(lab, browser):
    notebook(
        lab.root / "monitor.ipynb",
        "%lepton_cluster start -n 2 --gpus none",
        "import numpy as np\nx = np.ones(4_000_000)  # 32 MB\n%lepton_push x",
        "%%lepton_distributed\nimport numpy as np, time\n"
        "_big = np.ones(60_000_000)  # 480 MB on each rank\ntime.sleep(4)",
        "%lepton_monitor",
        "%lepton_cluster stop",
    )
    run = {"start": 0, "push": 1, "allocate": 2, "widget": 3, "stop": 4}
    page = browser.new_page(viewport={"width": 1500, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    with screenshot_on_failure(page, "lepton-monitor-panel"):
        page.goto(lab.url("lab/tree/monitor.ipynb"))
        page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
        page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=60_000)
        dismiss_news(page)

        open_monitor_panel(page)  # the palette command opens the panel
        panel = page.locator("#lepton-monitor")
        panel.locator(".lepton-empty").wait_for(timeout=20_000)

        run_cell(page, run["start"])
        page.locator("#lepton-monitor .lepton-rank").nth(1).wait_for(timeout=PANEL_TIMEOUT_MS)
        assert page.locator("#lepton-monitor .lepton-rank").count() == 2
        page.wait_for_function(
            "() => [...document.querySelectorAll('#lepton-monitor .lepton-state')]"
            ".every(s => s.textContent === 'idle')",
            timeout=PANEL_TIMEOUT_MS,
        )
        before = _memory(page, 0)
        hosts = panel.locator(".lepton-rank .lepton-host").all_inner_texts()
        assert len(hosts) == 2 and all(hosts)

        run_cell(page, run["push"])
        page.locator('#lepton-monitor .lepton-link[data-src="-1"][data-dst="1"]').wait_for(
            timeout=PANEL_TIMEOUT_MS
        )
        run_cell(page, run["allocate"])
        page.locator("#lepton-monitor .lepton-state", has_text="busy").first.wait_for(
            timeout=PANEL_TIMEOUT_MS
        )
        deadline = time.monotonic() + 60
        while _memory(page, 0) < before + 400_000_000:
            assert time.monotonic() < deadline, f"rank 0 memory stayed near {before} bytes"
            page.wait_for_timeout(250)
        label = panel.locator('.lepton-rank[data-rank="0"] .lepton-memory-label').inner_text()
        assert re.match(r"[\d.]+ [kMG]B / [\d.]+ [kMG]B", label)
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "lepton-monitor-panel.png"
        page.screenshot(path=str(shot))
        print(f"screenshot: {shot}")

        # the widget renders in JupyterLab too
        page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=60_000)
        run_cell(page, run["widget"])
        _widget_has_two_ranks(page)

        # and in the classic Notebook (Notebook 7), on the same kernel
        classic = browser.new_page(viewport={"width": 1200, "height": 900})
        classic_errors = []  # Notebook 7 reports some of its own; none may be ours
        classic.on("pageerror", lambda e: classic_errors.append(f"{e}\n{e.stack}"))
        classic.goto(lab.url("notebooks/monitor.ipynb"))
        classic.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
        classic.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=60_000)
        run_cell(classic, run["widget"])
        _widget_has_two_ranks(classic)
        classic.screenshot(path=str(ARTIFACTS / "lepton-monitor-widget-notebook7.png"))
        classic.close()
        assert not [e for e in classic_errors if "lepton" in e.lower()], classic_errors

        listed = lab.api("lepton/api/clusters")["clusters"]
        assert len(listed) == 1 and listed[0]["world_size"] == 2

        run_cell(page, run["stop"])
        panel.locator(".lepton-empty").wait_for(timeout=60_000)
        assert not errors, errors
    page.close()
