"""Driving JupyterLab in a real browser as a user does, waiting on states, never on time."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

#: What a cell's input prompt says once it is queued, running or has run: [*] or [n].
_RUN_PROMPT = re.compile(r"\[(\*|\d+)\]")


def dismiss_news(page: Page) -> None:
    """Close JupyterLab's news toast, if it shows (it does not on every start)."""
    for text in ("No", "Dismiss"):
        with contextlib.suppress(Exception):
            page.get_by_role("button", name=text, exact=True).click(timeout=2000)


def run_cell(page: Page, index: int, timeout_ms: int = 30_000) -> None:
    """Run cell ``index``: click into it, press Shift+Enter, and see it queued or run.

    The key goes wherever the focus is, so it is pressed only once this cell's
    editor has the focus; then its prompt must change to ``[*]`` or a count.
    """
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    editor = cell.locator(".jp-InputArea-editor")
    editor.click()
    expect(editor).to_have_class(re.compile(r"\bjp-mod-focused\b"), timeout=timeout_ms)
    prompt = cell.locator(".jp-InputPrompt")
    before = prompt.inner_text()
    page.keyboard.press("Shift+Enter")
    expect(prompt).not_to_have_text(before, timeout=timeout_ms)
    expect(prompt).to_have_text(_RUN_PROMPT, timeout=timeout_ms)


def open_monitor_panel(page: Page) -> None:
    """Open the Lepton panel from the command palette, as a user does."""
    page.keyboard.press("Control+Shift+C")
    page.locator(".lm-CommandPalette-input").fill("Lepton: Open cluster monitor")
    # the palette re-renders its items while it filters: wait for ours to be the active one,
    # then run it with Enter (clicking an item that re-renders can miss it)
    page.locator(
        ".lm-CommandPalette-item.lm-mod-active[data-command='lepton:open-monitor']"
    ).wait_for(timeout=30_000)
    page.locator(".lm-CommandPalette-input").press("Enter")
    page.locator("#lepton-monitor").wait_for(state="visible", timeout=30_000)


@contextlib.contextmanager
def screenshot_on_failure(page: Page, name: str) -> Iterator[None]:
    """Keep a screenshot and the notebook's outputs of a browser test that fails."""
    try:
        yield
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        with contextlib.suppress(Exception):
            page.screenshot(path=str(ARTIFACTS / f"{name}-failure.png"))
            outputs = page.locator(".jp-Notebook .jp-Cell").all_inner_texts()
            (ARTIFACTS / f"{name}-failure.txt").write_text("\n----\n".join(outputs))
        raise


#: The panel's renderer counts the messages it received in this attribute of its root.
_RECEIVED = "+document.querySelector('#lepton-monitor .lepton-monitor').dataset.received"


def received(page: Page) -> int:
    """How many messages the Lepton panel has received so far."""
    return int(page.evaluate(f"() => {_RECEIVED} || 0"))


def wait_received(page: Page, more_than: int, timeout_ms: int = 5000) -> None:
    """Wait until the panel has received more than ``more_than`` messages."""
    page.wait_for_function(f"() => {_RECEIVED} > {more_than}", timeout=timeout_ms)


def publish_seen(page: Page, publish: Callable[[], None], timeout_ms: int = 5000) -> None:
    """``publish()`` one message to the panel's server and wait until the panel has it."""
    before = received(page)
    publish()
    wait_received(page, before, timeout_ms)


def publish_until_seen(page: Page, publish: Callable[[], None], timeout_s: float = 30.0) -> None:
    """``publish()`` again until the panel has received a message: the server finds a new
    cluster's runtime file within its poll interval, and its SUB socket misses what was sent
    before it connected."""
    deadline = time.monotonic() + timeout_s
    while True:
        before = received(page)
        publish()
        try:
            wait_received(page, before, 500)
            return
        except PlaywrightError:
            if time.monotonic() > deadline:
                raise AssertionError(f"the panel received nothing in {timeout_s} s") from None
