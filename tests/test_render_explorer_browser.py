"""The explorer page of the 911-node 12-layer TransformerEncoder in a real browser (headless Chromium): it loads
without errors, search centres the hit, a click shows details, → moves the step highlight, a module box opens."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import torch

import tracer
from bench.models import batch, loss, transformer
from tracer.render.explorer_page import STEPPER_STEPS

pytestmark = [pytest.mark.browser, pytest.mark.graphviz, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
MB = 1024 * 1024


@pytest.fixture(scope="module")
def transformer_trace() -> tracer.Trace:
    model, x = transformer(), batch()  # the reference: 12 layers, d_model 256, training mode
    with tracer.record(modules=True) as rec:  # no model named: torch's global module hooks tag every node
        torch.autograd.backward(loss(model, x))
    (trace,) = rec.traces
    assert len(trace.nodes) == 911
    return trace


@pytest.fixture(scope="module")
def explorer(transformer_trace: tracer.Trace, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("explorer") / "x.html"
    started = time.perf_counter()
    transformer_trace.save(path)
    seconds = time.perf_counter() - started
    size = path.stat().st_size
    print(f"explorer page of {len(transformer_trace.nodes)} nodes: {size / MB:.1f} MB in {seconds:.1f} s")
    assert size <= 10 * MB and seconds <= 10  # the targets
    return path


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def _open(browser: Any, path: Path) -> tuple[Any, list[str]]:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.route("**/*", lambda r: r.abort() if not r.request.url.startswith("file:") else r.continue_())
    page.goto(path.as_uri())
    page.wait_for_selector(".gt-x[data-ready=true]")
    return page, problems


def _centre(page: Any, selector: str) -> tuple[float, float]:
    box = page.locator(selector).bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def test_the_page_is_chosen_by_step_count(transformer_trace: tracer.Trace, explorer: Path) -> None:
    text = explorer.read_text(encoding="utf-8")
    assert len(transformer_trace.steps) > STEPPER_STEPS
    assert text.count("<svg") == 1, "the picture is held once, not once per step"
    assert 'class="gt-x"' in text and "gt-stepper" not in text


def test_explorer_search_click_walk_and_boxes(browser: Any, transformer_trace: tracer.Trace, explorer: Path) -> None:
    page, problems = _open(browser, explorer)
    uid = page.get_attribute(".gt-x", "id")
    leaf = transformer_trace.leaves["model.layers.7.linear1.weight"]  # the eighth layer's
    assert leaf.node is not None

    # search by leaf name: the hit is selected, its module opened, and the node centred in the view
    page.fill(".gt-x-search", "layers.7.linear1.weight")
    first = page.locator(".gt-x-results li").first.text_content()
    assert first is not None and "model.layers.7.linear1.weight" in first
    page.press(".gt-x-search", "Enter")
    assert page.get_attribute(".gt-x", "data-selected") == f"n{leaf.node}"
    node = f"#{uid}-n{leaf.node}"
    view_x, view_y = _centre(page, ".gt-x-view")
    node_x, node_y = _centre(page, node)
    assert abs(node_x - view_x) < 3 and abs(node_y - view_y) < 3
    assert "model.layers.7.linear1.weight" in (page.text_content(".gt-x-panel h3") or "")

    # a click on another node shows its details: v, vᵀJ and statistics
    bias = transformer_trace.leaves["model.layers.7.linear1.bias"].node
    page.click(f"#{uid}-n{bias}")
    assert page.get_attribute(".gt-x", "data-selected") == f"n{bias}"
    details = page.text_content(".gt-x-details") or ""
    assert "v[0] (gradient arriving" in details and "norm" in details and ".grad after" in details

    # → walks: step 1 highlighted, then step 2, the later steps faded
    page.focus(".gt-x")
    page.keyboard.press("ArrowRight")
    assert page.get_attribute(".gt-x", "data-step") == "1"
    page.keyboard.press("ArrowRight")
    assert page.get_attribute(".gt-x", "data-step") == "2"
    mark = page.locator(".gt-x-mark").bounding_box()
    two = page.locator(f"#{uid}-n2").bounding_box()
    assert mark["x"] <= two["x"] and mark["x"] + mark["width"] >= two["x"] + two["width"]
    assert mark["y"] <= two["y"] and mark["y"] + mark["height"] >= two["y"] + two["height"]
    assert "gt-x-later" in (page.get_attribute(f"#{uid}-n3", "class") or "")
    assert "gt-x-later" not in (page.get_attribute(f"#{uid}-n2", "class") or "")
    assert (page.text_content(".gt-x-walk") or "").startswith("Step 2 of 911: ")
    page.keyboard.press("ArrowLeft")
    assert page.get_attribute(".gt-x", "data-step") == "1"

    # module boxes: closed at the layers; a click opens one into its children
    page.keyboard.press("Home")
    page.click(".gt-x-collapse")
    assert page.locator('.gt-x-box[data-path="model.layers.3"]').count() == 1
    assert page.locator(".gt-x-box").count() == 12
    page.click('.gt-x-box[data-path="model.layers.3"]')
    assert page.locator('.gt-x-box[data-path="model.layers.3"]').count() == 0
    assert page.locator('.gt-x-box[data-path="model.layers.3.self_attn"]').count() == 1
    assert page.get_attribute(".gt-x", "data-selected") == "module:model.layers.3"

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "explorer-transformer911.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 0
    assert not problems, problems
