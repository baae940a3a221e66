"""Two `trace.show(steps=True)` displays on one page, as a notebook embeds them, in headless Chromium.

Debian's chromium at /usr/bin/chromium, driven by Playwright (never `playwright install`). The page is a file
served by nobody: every request other than the page itself would be a network dependency, and is a failure.
The screenshot goes to test-artifacts/ (gitignored).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import tracer

pytestmark = [pytest.mark.browser, pytest.mark.graphviz]

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"the browser tests need Debian's chromium at {CHROMIUM}: sudo apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _notebook_page(tmp_path: Path) -> tuple[Path, tracer.Trace]:
    """The same trace displayed twice, each in an output area like Jupyter's, between other outputs."""
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = torch.stack([x.sum(), (x**2).sum()])
    t = tracer.trace(y, gradient=torch.tensor([1.0, 0.5]))
    view = t.show(steps=True)
    outputs = [view._repr_mimebundle_(include={"text/html"})["text/html"] for _ in range(2)]
    cells = "".join(
        f'<div class="cell"><pre class="input">In [{k}]: t.show(steps=True)</pre><div class="output">{html}</div></div>'
        for k, html in enumerate(outputs, start=1)
    )
    page = tmp_path / "notebook.html"
    page.write_text(
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>two steppers</title></head>'
        f"<body>{cells}</body></html>",
        encoding="utf-8",
    )
    return page, t


def _state(page: Any, root: str) -> tuple[str, list[str]]:
    """The root's data-step and the frames shown (step:active), for one stepper."""
    step = page.get_attribute(root, "data-step")
    shown = page.eval_on_selector_all(
        f"{root} .gt-frame", "fs => fs.filter(f => !f.hidden).map(f => f.dataset.step + ':' + f.dataset.active)"
    )
    return step, shown


def test_two_steppers_step_independently(browser: Any, tmp_path: Path) -> None:
    path, trace = _notebook_page(tmp_path)
    n = len(trace.steps)
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    requests: list[str] = []
    problems: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.goto(path.as_uri())

    roots = page.eval_on_selector_all(".gt-stepper", "rs => rs.map(r => r.id)")
    assert len(roots) == 2 and roots[0] != roots[1]
    a, b = (f"#{r}" for r in roots)
    assert _state(page, a) == ("1", ["1:true"]) and _state(page, b) == ("1", ["1:true"])
    assert page.is_disabled(f"{a} .gt-prev") and not page.is_disabled(f"{a} .gt-next")

    page.click(f"{a} .gt-next")
    page.click(f"{a} .gt-next")
    assert _state(page, a) == ("3", ["3:true"])
    assert _state(page, b) == ("1", ["1:true"]), "clicking one stepper must not move the other"
    page.click(f"{a} .gt-prev")
    assert _state(page, a) == ("2", ["2:true"]) and page.text_content(f"{a} .gt-current") == "2"

    page.click(f"{b} .gt-frame[data-step='1']")  # clicking the picture focuses its stepper for the keys
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowLeft")
    assert _state(page, b) == ("2", ["2:true"]) and _state(page, a) == ("2", ["2:true"])
    page.focus(a)
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")  # already at the first step: stays there
    assert _state(page, a) == ("1", ["1:true"]) and _state(page, b) == ("2", ["2:true"])

    page.fill(f"{b} .gt-slider", str(n))
    page.dispatch_event(f"{b} .gt-slider", "input")
    assert _state(page, b) == (str(n), [f"{n}:true"])
    assert page.is_disabled(f"{b} .gt-next") and page.text_content(f"{b} .gt-current") == str(n)
    assert _state(page, a) == ("1", ["1:true"])

    caption = page.text_content(f"{b} .gt-frame[data-step='{n}'] figcaption")
    assert caption is not None and caption.startswith(f"Step {n} of {n}: AccumulateGrad")
    assert "x.grad: None → [2, 3, 4]" in caption  # torch's x.grad = 1 + 0.5·2x
    assert trace.leaves["x"].grad_total is not None and trace.leaves["x"].grad_total.values == (2.0, 3.0, 4.0)

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "notebook-two-steppers.png"), full_page=True)
    assert (ARTIFACTS / "notebook-two-steppers.png").stat().st_size > 0
    assert not problems, problems
    assert requests == [path.as_uri()], f"only the page itself may be requested, got {requests}"
    page.close()
