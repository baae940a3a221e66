"""The committed gallery in headless Chromium: every picture loads and has nodes, a step page steps, offline."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from tests.gallery_helpers import GALLERY, script_ids

pytestmark = [pytest.mark.browser, pytest.mark.graphviz]

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
STEPPER = GALLERY / "out" / "05-many-points" / "01-ones-like-vs-sum" / "pass2.html"  # (x**2).sum(): 3 steps


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (./dev test installs Debian's chromium)")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Watched:
    """A page whose console errors, page errors and non-file requests are collected (and the latter blocked)."""

    def __init__(self, browser: Any) -> None:
        self.page = browser.new_page(viewport={"width": 1400, "height": 900})
        self.errors: list[str] = []
        self.network: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.route("**/*", self._route)

    def _route(self, route: Any) -> None:
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            self.network.append(route.request.url)
            route.abort()


def test_every_picture_of_the_index_loads_and_has_nodes(browser: Any) -> None:
    w = Watched(browser)
    w.page.goto((GALLERY / "index.html").as_uri())
    entries = w.page.eval_on_selector_all("article", "as => as.map(a => a.dataset.entry)")
    assert entries == script_ids()
    images = w.page.eval_on_selector_all(
        "article img", "is => is.map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0])"
    )
    assert len(images) == len(list((GALLERY / "out").rglob("*.svg")))
    broken = [src for src, ok in images if not ok]
    assert not broken, f"pictures that did not load: {broken}"
    for src, _ in images:
        w.page.goto((GALLERY / src).as_uri())
        nodes = w.page.evaluate("document.querySelectorAll('g.node').length")
        assert nodes >= 3, f"{src}: {nodes} node groups"
    assert not w.errors and not w.network


def test_a_step_page_steps_through_the_pass(browser: Any) -> None:
    w = Watched(browser)
    w.page.goto(STEPPER.as_uri())
    root = ".gt-stepper"
    count = int(w.page.get_attribute(root, "data-steps"))
    assert count == 3

    def shown() -> tuple[str, list[str]]:
        visible = w.page.eval_on_selector_all(
            f"{root} .gt-frame", "fs => fs.filter(f => !f.hidden).map(f => f.dataset.step)"
        )
        return w.page.get_attribute(root, "data-step"), visible

    assert shown() == ("1", ["1"])
    assert w.page.is_disabled("button:has-text('Previous')")
    for step in range(2, count + 1):
        w.page.click("button:has-text('Next')")
        assert shown() == (str(step), [str(step)])
    assert w.page.is_disabled("button:has-text('Next')")
    w.page.click("button:has-text('Previous')")
    assert shown() == (str(count - 1), [str(count - 1)])
    caption = w.page.text_content(f"{root} .gt-frame[data-step='{count - 1}'] figcaption") or ""
    assert caption.startswith(f"Step {count - 1} of {count}")
    assert w.page.eval_on_selector_all(f"{root} .gt-frame svg g.node", "ns => ns.length") > 0
    assert not w.errors and not w.network


def test_the_index_links_only_to_files_that_exist(browser: Any) -> None:
    w = Watched(browser)
    w.page.goto((GALLERY / "index.html").as_uri())
    links = w.page.eval_on_selector_all("a[href]", "as => as.map(a => a.href)")
    files = [link.split("#")[0] for link in links if link.startswith("file:")]
    assert files
    missing = sorted({f for f in files if not Path(unquote(f.removeprefix("file://"))).exists()})
    assert not missing, missing
    assert "notebook.ipynb" in " ".join(files) or not (GALLERY / "notebook.ipynb").exists()
