"""The module view of a 12-layer transformer as golden DOT, and the HTML module page (profile chart beside the
graph, every box a link to its inside) parsed and driven in headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from tests.module_models import Recorded, encoder
from tests.render_helpers import check_html
from tracer.analyse import module_view
from tracer.render.shown_precision import mismatch

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("GRADTRACE_UPDATE_GOLDEN") == "1"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def twelve() -> Recorded:
    return encoder(layers=12, d_model=16, sequence=4, boundaries=False)


def test_golden_module_view_of_a_12_layer_transformer(twelve: Recorded) -> None:
    """Reviewed as PNG: seed → loss → one box for the 12 layers with a row per block → the input's gradient."""
    text = twelve.trace.to_dot(view="modules")
    path = GOLDEN / "transformer12_modules.dot"
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no golden file {path.name}: run with GRADTRACE_UPDATE_GOLDEN=1 and review it"
    # At the shown precision: another CPU rounds the last bits differently (tracer/render/shown_precision.py).
    assert (why := mismatch(path.read_text(encoding="utf-8"), text)) is None, f"DOT differs from {path.name}: {why}"


def test_the_default_picture_of_a_big_tagged_pass_is_the_module_view(twelve: Recorded) -> None:
    limit = len(twelve.trace.nodes) // 2
    assert twelve.trace.to_dot(max_nodes=limit) == twelve.trace.to_dot(view="modules", max_nodes=limit)


def _page(trace: object, tmp_path: Path, **options: object) -> tuple[Path, str]:
    from tracer import Trace

    assert isinstance(trace, Trace)
    path = trace.save(tmp_path / "m.html", view="modules", **options)
    return path, path.read_text(encoding="utf-8")


@pytest.mark.graphviz
def test_module_page_links_every_box_to_a_drawn_inside(twelve: Recorded, tmp_path: Path) -> None:
    _, text = _page(twelve.trace, tmp_path)
    parsed = check_html(text)
    ids = set(parsed.ids)
    assert len(ids) == len(parsed.ids), "element ids are unique on the page"
    links = re.findall(r'xlink:href="#([^"]+)"', text) + re.findall(r'<a href="#([^"]+)"', text)
    assert links and all(target in ids for target in links)
    titles = re.findall(r"<h2>([^<]*)</h2>", text)
    assert titles[:2] == ["Module view", "Module view, repeated blocks drawn one by one"]
    assert titles[2:] == [f"Inside model.layers.{i} (TransformerEncoderLayer)" for i in range(11, -1, -1)]
    assert "arriving at each backward step" in text  # the profile chart beside the graph
    assert "<script" not in text  # plain links and CSS :target: works anywhere, offline
    assert text == _page(twelve.trace, tmp_path)[1]  # deterministic


@pytest.mark.graphviz
def test_a_large_pass_saves_the_explorer_and_view_modules_the_module_page(twelve: Recorded, tmp_path: Path) -> None:
    path = twelve.trace.save(tmp_path / "auto.html", max_frames=100)
    assert 'class="gt-x"' in path.read_text(encoding="utf-8")  # explorer_page.choose: above 30 steps
    assert 'class="gt-modules"' in _page(twelve.trace, tmp_path)[1]


@pytest.mark.graphviz
@pytest.mark.browser
def test_clicking_boxes_opens_their_insides(twelve: Recorded, tmp_path: Path) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    path, _ = _page(twelve.trace, tmp_path)
    view = module_view.build(twelve.trace)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.route("**/*", lambda r: r.abort() if not r.request.url.startswith("file:") else r.continue_())
            page.goto(path.as_uri())

            def shown() -> list[str]:
                return page.eval_on_selector_all(
                    ".gt-view", "vs => vs.filter(v => getComputedStyle(v).display !== 'none').map(v => v.id)"
                )

            (main,) = shown()
            assert main.endswith("-main")
            assert page.is_visible(".gt-main .gt-profile svg")
            run = view.runs[0].key
            page.click(f'.gt-main g[id$="-{run}"] a')
            (expanded,) = shown()
            assert page.text_content(f"#{expanded} h2") == "Module view, repeated blocks drawn one by one"
            page.click(f'#{expanded} g.gt-module:has-text("model.layers.4") a')
            (inside,) = shown()
            assert page.text_content(f"#{inside} h2") == "Inside model.layers.4 (TransformerEncoderLayer)"
            assert "model.layers.4 · TransformerEncoderLayer · opened" in (page.text_content(f"#{inside} svg") or "")
            page.click(f"#{inside} nav >> text=back one level")
            assert shown() == [expanded]
            page.go_back()
            assert shown() == [inside]
            page.click(f"#{inside} nav >> text=module view")
            assert shown() == [main]
            assert not errors
        finally:
            browser.close()
