"""The cost of one monitor update in the browser: 64 ranks on 8 hosts at 2 Hz.

A real ``jupyter lab`` and the Lepton panel in Debian's Chromium (Playwright),
fed a synthetic 64-rank, 8-host snapshot stream through the real server and
WebSocket (tests/support/stream.py publishes signed snapshots as a collector
does). Five minutes of history are fed first (600 snapshots, as fast as the
panel takes them), then snapshots come at 2 Hz for ``--seconds``; the page
measures each redraw with the Performance API (``performance.measure``,
``lepton-update``). Prints the median and p95 against the budget of one frame
(16 ms; goal: <= 1.0 of it).

    python benchmarks/bench_monitor.py [--seconds 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _results import record  # noqa: E402

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, Lab  # noqa: E402
from tests.support.lab import (  # noqa: E402
    dismiss_news,
    open_monitor_panel,
    publish_seen,
    publish_until_seen,
)
from tests.support.stream import Stream, snapshot  # noqa: E402

FRAME_MS = 16.0
RANKS, HOSTS, INTERVAL = 64, 8, 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds at 2 Hz (default 30)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    root = Path(tempfile.mkdtemp(prefix="lepton-bench-lab-"))
    (root / "runtime").mkdir()
    lab = Lab(root, root / "runtime")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(lab.url("lab"))
            page.locator(".jp-LabShell").wait_for(timeout=60_000)
            dismiss_news(page)
            open_monitor_panel(page)
            with Stream(str(lab.runtime)) as s:
                t0 = time.time() - 300
                publish_until_seen(page, lambda: s.publish(snapshot(RANKS, HOSTS, t0)))
                for i in range(1, 600):
                    publish_seen(page, lambda i=i: s.publish(snapshot(RANKS, HOSTS, t0 + 0.5 * i, i)))
                page.evaluate("() => { window.__leptonUpdates.length = 0; }")
                steps = int(args.seconds / INTERVAL)
                for i in range(600, 600 + steps):
                    s.publish(snapshot(RANKS, HOSTS, t0 + 0.5 * i, i))
                    time.sleep(INTERVAL)  # the stream's pace: 2 Hz
                costs = page.evaluate("() => window.__leptonUpdates.slice()")
            browser.close()
    finally:
        lab.stop()
    if errors:
        raise SystemExit(f"page errors: {errors}")
    costs.sort()
    median, p95 = statistics.median(costs), costs[int(0.95 * (len(costs) - 1))]
    line = (
        f"one panel update, {RANKS} ranks on {HOSTS} hosts at 2 Hz with 5 minutes of history "
        f"({len(costs)} updates over {args.seconds:g} s, Debian Chromium headless): median "
        f"{median:.2f} ms = {median / FRAME_MS:.2f} of a 16 ms frame, p95 {p95:.2f} ms = "
        f"{p95 / FRAME_MS:.2f}, max {costs[-1]:.2f} ms (goal: <= 1.0 of a frame)"
    )
    print(line)
    record("bench_monitor", line)


if __name__ == "__main__":
    main()
