"""The stepper in a real browser (headless Chromium): buttons, slider and arrow keys move the active frame."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.render_helpers import case_trace
from tracer.render.stepper import fragment

pytestmark = [pytest.mark.browser, pytest.mark.graphviz]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def _active(page, root: str = ".gt-stepper") -> tuple[str, list[str]]:  # type: ignore[no-untyped-def]
    step = page.get_attribute(root, "data-step")
    shown = page.eval_on_selector_all(
        f"{root} .gt-frame", "fs => fs.filter(f => !f.hidden).map(f => f.dataset.step + ':' + f.dataset.active)"
    )
    return step, shown


def test_buttons_keys_and_slider(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    trace, _, _ = case_trace("zero_d_100")
    n = len(trace.steps)
    path = trace.save(tmp_path / "s.html")
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.route("**/*", lambda route: route.abort() if not route.request.url.startswith("file:") else route.continue_())
    page.goto(path.as_uri())
    assert _active(page) == ("1", ["1:true"])
    assert page.is_disabled("button:has-text('Previous')")
    page.click("button:has-text('Next')")
    assert _active(page) == ("2", ["2:true"])
    page.click("button:has-text('Next')")
    page.click("button:has-text('Previous')")
    assert _active(page) == ("2", ["2:true"])
    page.keyboard.press("ArrowRight")
    assert _active(page) == ("3", ["3:true"])
    page.keyboard.press("ArrowLeft")
    assert _active(page) == ("2", ["2:true"])
    page.fill(".gt-slider", str(n))
    page.dispatch_event(".gt-slider", "input")
    assert _active(page) == (str(n), [f"{n}:true"])
    assert page.is_disabled("button:has-text('Next')")
    assert page.text_content(".gt-current") == str(n)
    assert not errors


def test_two_steppers_on_one_page_are_independent(browser) -> None:  # type: ignore[no-untyped-def]
    trace, _, _ = case_trace("x_times_x_ones")
    html = "<!DOCTYPE html><html><body>" + fragment(trace, uid="a") + fragment(trace, uid="b") + "</body></html>"
    page = browser.new_page()
    page.set_content(html)
    page.click("#a button:has-text('Next')")
    assert _active(page, "#a") == ("2", ["2:true"])
    assert _active(page, "#b") == ("1", ["1:true"])
