"""End to end: jupyter lab, a notebook on the lepton kernel, a 2-rank cluster, the panel and
the widget (one renderer), then the same widget in Notebook 7."""

import os
import signal
import time

import pytest

from tests.support.lab import dismiss_news, open_monitor_panel, run_cell, screenshot_on_failure

from .conftest import ARTIFACTS, notebook

pytestmark = [pytest.mark.slow, pytest.mark.labextension]

#: Seconds for the panel to reflect the cluster (engines start, samples flow).
PANEL_TIMEOUT_MS = 120_000

#: The DOM structure under a node: tags and classes, not text or sizes; classes that say a
#: state that changes by the second (stale, hover) are left out.
STRUCTURE = """(root) => {
  const skip = c => /stale|hover|over|active|lepton-state-/.test(c);
  const walk = n => n.tagName.toLowerCase() + '.' + [...n.classList].filter(c => !skip(c)).sort().join('.')
    + '(' + [...n.children].map(walk).join(',') + ')';
  return walk(root);
}"""


def _chart(page, rank, series="memory"):
    chart = page.locator(
        f'#lepton-monitor .lepton-chart[data-series="{series}"][data-rank="{rank}"]'
    )
    return {k: float(chart.get_attribute(f"data-{k}") or "nan") for k in ("points", "first", "last")}


def test_panel_and_widget_chart_a_distributed_cell_and_a_killed_rank(lab, browser):
    notebook(
        lab.root / "monitor.ipynb",
        "%lepton_cluster start -n 2 --gpus none",
        "import numpy as np\nx = np.ones(4_000_000)  # 32 MB\n%lepton_push x",
        # 11 s of a cell that allocates: 40 MB more on each rank every half second
        "%%lepton_distributed\nimport numpy as np, time\n_held = []\n"
        "for _ in range(22):\n    _held.append(np.ones(5_000_000))\n    time.sleep(0.5)",
        "%lepton_monitor",
        "%lepton_cluster stop",
    )
    run = {"start": 0, "push": 1, "allocate": 2, "widget": 3, "stop": 4}
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
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
        page.locator("#lepton-monitor tr.lepton-rank").nth(1).wait_for(timeout=PANEL_TIMEOUT_MS)
        assert panel.locator("tr.lepton-rank").count() == 2
        page.wait_for_function(
            "() => [...document.querySelectorAll('#lepton-monitor .lepton-state')]"
            ".every(s => s.textContent === 'idle')",
            timeout=PANEL_TIMEOUT_MS,
        )
        # one host: one box, holding both ranks and the notebook
        assert panel.locator("g.lepton-host-box").count() == 1
        assert panel.locator("g.lepton-host-box g.lepton-node").count() == 3

        run_cell(page, run["push"])
        panel.locator('.lepton-edge[data-src="-1"][data-dst="1"]').wait_for(timeout=PANEL_TIMEOUT_MS)
        assert panel.locator('.lepton-edge[data-src="-1"]').first.get_attribute("data-class") == "shm"
        page.locator(".lepton-event[data-kind='push_ended']").first.wait_for(timeout=PANEL_TIMEOUT_MS)

        run_cell(page, run["allocate"])
        page.locator(".lepton-event[data-kind='cell_started']").first.wait_for(timeout=PANEL_TIMEOUT_MS)
        started = time.monotonic()
        panel.locator(".lepton-state", has_text="busy").first.wait_for(timeout=PANEL_TIMEOUT_MS)
        page.wait_for_timeout(max(0, 10_000 - 1000 * (time.monotonic() - started)))  # 10 s into it
        for rank in (0, 1):
            chart = _chart(page, rank)
            assert chart["points"] >= 10, chart
            assert chart["last"] > chart["first"], chart
        # clicking a rank opens its larger chart, with a legend that reads out values
        panel.locator('tr.lepton-rank[data-rank="0"] .lepton-rank-id').click()
        detail = panel.locator('.lepton-detail[data-rank="0"]')
        detail.wait_for(timeout=10_000)
        assert detail.locator(".u-legend").count() == 1 and detail.locator("canvas").count() >= 1
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "lepton-monitor-panel.png"))
        panel.screenshot(path=str(ARTIFACTS / "lepton-monitor-panel-only.png"))
        print(f"screenshot: {ARTIFACTS / 'lepton-monitor-panel.png'}")
        detail.locator(".lepton-detail-close").click()
        detail.wait_for(state="detached", timeout=10_000)

        # rank 1's engine is killed while the cell runs: the event, and the state
        pid = lab.api("lepton/api/clusters")["clusters"][0]["ranks"][1]["pid"]
        os.kill(pid, signal.SIGKILL)
        page.locator(".lepton-event[data-kind='rank_died'][data-rank='1']").wait_for(
            timeout=PANEL_TIMEOUT_MS
        )
        page.wait_for_function(
            "() => [...document.querySelectorAll('#lepton-monitor tr.lepton-rank[data-rank=\"1\"] "
            ".lepton-state')].some(s => s.textContent === 'dead')",
            timeout=PANEL_TIMEOUT_MS,
        )
        page.screenshot(path=str(ARTIFACTS / "lepton-monitor-panel-dead-rank.png"))

        # the widget: the same renderer, so the same DOM for the same cluster
        page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=120_000)
        run_cell(page, run["widget"])
        widget = page.locator(".jp-OutputArea .lepton-monitor .lepton-cluster")
        widget.wait_for(timeout=60_000)
        widget.locator("tr.lepton-rank").nth(1).wait_for(timeout=30_000)
        same, deadline = None, time.monotonic() + 30
        while time.monotonic() < deadline:  # both take each snapshot on its own path: wait to agree
            a = panel.locator(".lepton-cluster").first.evaluate(STRUCTURE)
            b = widget.evaluate(STRUCTURE)
            same = a == b
            if same:
                break
            page.wait_for_timeout(250)
        assert same, f"panel and widget differ:\n{a}\n{b}"
        page.screenshot(path=str(ARTIFACTS / "lepton-monitor-widget-lab.png"))

        # and in the classic Notebook (Notebook 7), on the same kernel
        classic = browser.new_page(viewport={"width": 1200, "height": 900})
        classic_errors = []  # Notebook 7 reports some of its own; none may be ours
        classic.on("pageerror", lambda e: classic_errors.append(f"{e}\n{e.stack}"))
        classic.goto(lab.url("notebooks/monitor.ipynb"))
        classic.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
        classic.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=60_000)
        run_cell(classic, run["widget"])
        classic.locator(".jp-OutputArea .lepton-monitor tr.lepton-rank").nth(1).wait_for(timeout=60_000)
        classic.locator(".jp-OutputArea .lepton-monitor .lepton-chart").first.wait_for(timeout=30_000)
        classic.screenshot(path=str(ARTIFACTS / "lepton-monitor-widget-notebook7.png"))
        classic.close()
        assert not [e for e in classic_errors if "lepton" in e.lower()], classic_errors

        listed = lab.api("lepton/api/clusters")["clusters"]
        assert len(listed) == 1 and listed[0]["world_size"] == 2

        run_cell(page, run["stop"])
        panel.locator(".lepton-empty").wait_for(timeout=60_000)
        assert not errors, errors
    page.close()
