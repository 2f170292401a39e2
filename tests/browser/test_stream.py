"""The panel against snapshot streams fed through the real server and WebSocket.

A synthetic cluster (tests/support/stream.py) publishes signed snapshots the
way a collector does; the server follows it and the panel in Debian's Chromium
draws them: 64 ranks on 8 hosts at 2 Hz within a frame's budget, malformed
snapshots from hypothesis without a page error, and stale ones marked stale.
"""

from __future__ import annotations

import json
import statistics
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.lab import (
    dismiss_news,
    open_monitor_panel,
    publish_seen,
    publish_until_seen,
    screenshot_on_failure,
)
from tests.support.stream import Stream, snapshot

from .conftest import ARTIFACTS

#: times the browser's drawing
pytestmark = [pytest.mark.slow, pytest.mark.labextension, pytest.mark.alone]

#: The goal for one update at 64 ranks on 8 hosts is one frame at 60 Hz (16 ms); it is
#: measured and recorded by benchmarks/bench_monitor.py. This test only guards against a
#: renderer that got far slower: the same machine measured 9.95 ms one day and 18.7 ms the
#: next, so a one-frame bound here would fail with the machine, not with the code.
FRAME_MS = 16.0
GUARD_FRAMES = 2
#: Snapshots of history fed first, then snapshots fed at 2 Hz and measured.
HISTORY, LIVE = 60, 14
#: Milliseconds to wait for the panel to show what was published.
SHOW_MS = 30_000


@pytest.fixture(scope="module")
def panel(lab, browser):
    page = browser.new_page(viewport={"width": 1500, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"{e}\n{e.stack}"))
    page.goto(lab.url("lab"))
    page.locator(".jp-LabShell").wait_for(timeout=60_000)
    dismiss_news(page)
    open_monitor_panel(page)
    page.locator("#lepton-monitor .lepton-empty").wait_for(timeout=SHOW_MS)
    page.errors = errors  # type: ignore[attr-defined]
    yield page
    page.close()


def _section(page, stream):
    return page.locator(f'#lepton-monitor .lepton-cluster[data-cluster="{stream.cluster}"]')


def test_64_ranks_on_8_hosts_at_2_hz_draw_every_update_in_time(panel, lab):
    with screenshot_on_failure(panel, "lepton-stream-64"), Stream(str(lab.runtime)) as s:
        t0 = time.time() - 0.5 * HISTORY
        publish_until_seen(panel, lambda: s.publish(snapshot(t=t0)))
        section = _section(panel, s)
        # a minute of history, as fast as the panel takes it (bench_monitor.py feeds five)
        for i in range(1, HISTORY):
            publish_seen(panel, lambda i=i: s.publish(snapshot(t=t0 + 0.5 * i, step=i)))
        chart = section.locator('.lepton-chart[data-series="memory"][data-rank="0"]')
        assert int(chart.get_attribute("data-points")) == HISTORY
        # then live, at 2 Hz: the cost of each update is what the page measured
        panel.evaluate("() => { window.__leptonUpdates.length = 0; }")
        for i in range(HISTORY, HISTORY + LIVE):
            s.publish(snapshot(t=t0 + 0.5 * i, step=i))
            time.sleep(0.5)  # the stream's own pace: one snapshot every 0.5 s
        costs = panel.evaluate("() => window.__leptonUpdates.slice()")
        assert len(costs) >= LIVE - 2, f"{len(costs)} updates drawn for {LIVE} snapshots"
        median, p95 = statistics.median(costs), sorted(costs)[int(0.95 * len(costs))]
        print(f"one update, 64 ranks on 8 hosts: median {median:.2f} ms, p95 {p95:.2f} ms")
        assert median <= GUARD_FRAMES * FRAME_MS, costs

        assert section.locator("g.lepton-host-box").count() == 8
        # the notebook runs on a host of no rank: a box of its own
        assert section.locator('g.lepton-notebook-box g.lepton-node[data-rank="-1"]').count() == 1
        assert section.locator("g.lepton-node").count() == 64 + 1
        assert section.locator(".lepton-edge").count() == 65
        assert section.locator('.lepton-edge[data-src="-1"][data-dst="0"]').count() == 1
        assert section.locator("tr.lepton-rank").count() == 64
        ARTIFACTS.mkdir(exist_ok=True)
        panel.screenshot(path=str(ARTIFACTS / "lepton-monitor-64-ranks.png"))
    section.wait_for(state="detached", timeout=SHOW_MS)  # gone with its runtime file
    assert not panel.errors, panel.errors


def _json(leaves=None):
    leaves = leaves or (
        st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63)
        | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
    )  # fmt: skip
    return st.recursive(
        leaves,
        lambda kids: st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=10), kids, max_size=5),
        max_leaves=20,
    )


_FIELDS = ("time", "interval", "world_size", "backend", "running", "notebook", "ranks", "links", "events")
_ROW_FIELDS = ("rank", "host", "pid", "device", "gpu", "state", "age", "memory", "series", "utilization_kind")


@st.composite
def malformed(draw):
    """A snapshot of 3 ranks with some fields, of it or of a rank, link or event, made junk."""
    snap = snapshot(ranks=3, hosts=2, step=draw(st.integers(0, 1000)), events=3)
    for name in draw(st.lists(st.sampled_from(_FIELDS), max_size=3, unique=True)):
        snap[name] = draw(_json())
    if isinstance(snap.get("ranks"), list) and snap["ranks"]:
        for name in draw(st.lists(st.sampled_from(_ROW_FIELDS), max_size=4, unique=True)):
            row = draw(st.sampled_from(snap["ranks"]))
            if isinstance(row, dict):
                row[name] = draw(_json())
        if draw(st.booleans()):
            snap["ranks"].append(draw(_json()))
    for part in ("links", "events"):
        if isinstance(snap.get(part), list) and snap[part] and draw(st.booleans()):
            item = draw(st.sampled_from(snap[part]))
            if isinstance(item, dict):
                item[draw(st.sampled_from(sorted(item)))] = draw(_json())
    if draw(st.booleans()):  # and numbers at the edges of what JSON carries
        snap["time"] = draw(st.sampled_from([0, -1, 1e308, -1e308, 2**63, time.time() + 1e9]))
    return snap


def test_malformed_snapshots_never_throw_and_stale_ones_show_stale(panel, lab):
    with screenshot_on_failure(panel, "lepton-stream-malformed"), Stream(str(lab.runtime)) as s:
        publish_until_seen(panel, lambda: s.publish(snapshot(ranks=3, hosts=2)))
        section = _section(panel, s)

        @settings(max_examples=80, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])  # fmt: skip
        @given(bad=malformed())
        def feed(bad):
            json.dumps(bad, allow_nan=False)  # what the wire carries
            publish_seen(panel, lambda: s.publish(bad))
            assert not panel.errors, panel.errors[-1]

        feed()
        # a good snapshot after all that still draws, live
        publish_seen(panel, lambda: s.publish(snapshot(ranks=3, hosts=2, step=5000)))
        assert section.locator("tr.lepton-rank").count() == 3
        assert "lepton-stale" not in (section.get_attribute("class") or "")
        # a rank whose latest sample is older than 3 intervals is marked stale, not live
        old = snapshot(ranks=3, hosts=2, step=5001, t=time.time())
        old["ranks"][2]["age"] = 30.0
        publish_seen(panel, lambda: s.publish(old))
        row = section.locator('tr.lepton-rank[data-rank="2"]')
        panel.wait_for_function(
            "(row) => row.classList.contains('lepton-stale')", arg=row.element_handle(), timeout=SHOW_MS
        )
        assert row.locator(".lepton-rank-stale").is_visible()
        assert "lepton-stale" not in (section.locator('tr.lepton-rank[data-rank="0"]').get_attribute("class") or "")
        # and once the stream stops, within a few intervals the whole cluster reads stale
        t_stop = time.monotonic()
        panel.wait_for_function(
            "(s) => s.classList.contains('lepton-stale')", arg=section.element_handle(), timeout=SHOW_MS
        )
        assert time.monotonic() - t_stop < 10
        assert section.locator(".lepton-stale-marker").is_visible()
        ARTIFACTS.mkdir(exist_ok=True)
        panel.screenshot(path=str(ARTIFACTS / "lepton-monitor-stale.png"))
    assert not panel.errors, panel.errors
