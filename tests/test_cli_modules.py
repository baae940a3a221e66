"""The module view from the command line: --view, --depth, --focus, --repeats, --profile are Trace.save's options."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import cli
from tests.cli_helpers import invoke
from tests.module_models import encoder


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("trace") / "pass1.json"
    path.write_text(encoder(layers=3, boundaries=False).trace.to_json(), encoding="utf-8")
    return path


def test_choices_are_the_renderers() -> None:
    from tracer.render.options import REPEATS, VIEWS

    params = {p.name: p for p in cli.commands["render"].params}
    assert tuple(params["view"].type.choices) == VIEWS  # type: ignore[attr-defined]
    assert tuple(params["repeats"].type.choices) == REPEATS  # type: ignore[attr-defined]


def test_flags_give_the_librarys_module_view(saved: Path, tmp_path: Path) -> None:
    import tracer

    trace = tracer.load(saved)
    out = tmp_path / "m.dot"
    args = ["--view", "modules", "--depth", "3", "--focus", "model.layers.1", "--repeats", "expand"]
    result = invoke("render", saved, "-o", out, *args)
    assert result.exit_code == 0, result.output
    expected = trace.to_dot(view="modules", depth=3, focus="model.layers.1", repeats="expand")
    assert out.read_text(encoding="utf-8") == expected


@pytest.mark.graphviz
def test_profile_flag_puts_the_chart_beside_the_svg(saved: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.svg"
    assert invoke("render", saved, "-o", out, "--view", "modules", "--profile").exit_code == 0
    assert "arriving at each backward step" in out.read_text(encoding="utf-8")


def test_bad_values_are_one_line_errors(saved: Path, tmp_path: Path) -> None:
    result = invoke("render", saved, "-o", tmp_path / "m.dot", "--focus", "model.layer.1")
    assert result.exit_code == 1
    assert "unknown focus: 'model.layer.1'" in result.output and "'model.layers.1'" in result.output
    assert "Traceback" not in result.output
    result = invoke("render", saved, "-o", tmp_path / "m.dot", "--view", "boxes")
    assert result.exit_code == 2 and "'boxes' is not one of 'auto', 'full', 'modules'" in result.output
    result = invoke("render", saved, "-o", tmp_path / "m.dot", "--depth", "-1")
    assert result.exit_code == 2 and "--depth" in result.output
