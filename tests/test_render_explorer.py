"""Which .html page a pass gets, and the explorer page as data: the picture once, one record per node, deterministic."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

import tracer
from tests.module_models import Block
from tracer.render.explorer_page import STEPPER_STEPS, choose
from tracer.render.options import parse_options

pytestmark = pytest.mark.graphviz

DATA = re.compile(r'<script type="application/json" class="gt-x-data">(.*?)</script>', re.DOTALL)


def _chain(steps: int) -> tracer.Trace:
    x = torch.linspace(-1, 1, 4, requires_grad=True)
    h = x
    for _ in range(steps - 2):  # each tanh is one step; sum and the leaf's AccumulateGrad are two more
        h = torch.tanh(h)
    return tracer.trace(h.sum())


def test_small_passes_keep_the_stepper_larger_ones_get_the_explorer(tmp_path: Path) -> None:
    small, large = _chain(STEPPER_STEPS), _chain(STEPPER_STEPS + 1)
    assert len(small.steps) == STEPPER_STEPS and len(large.steps) == STEPPER_STEPS + 1
    assert choose(small, parse_options({})) == "stepper"
    assert choose(large, parse_options({})) == "explorer"
    assert choose(large, parse_options({"max_frames": 5})) == "explorer"
    assert 'class="gt-stepper"' in small.save(tmp_path / "s.html").read_text(encoding="utf-8")
    text = large.save(tmp_path / "x.html").read_text(encoding="utf-8")
    assert 'class="gt-x"' in text and text.count("<svg") == 1
    assert text == large.save(tmp_path / "again.html").read_text(encoding="utf-8")  # deterministic bytes
    assert "http://" not in text.replace("http://www.w3.org/", "")  # nothing fetched: offline


def test_the_payload_holds_every_node_once_with_its_details(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(*[Block() for _ in range(5)])
    with tracer.record(modules=True) as rec:
        model(torch.randn(4, 3)).pow(2).sum().backward()
    (trace,) = rec.traces
    text = trace.save(tmp_path / "m.html").read_text(encoding="utf-8")
    (raw,) = DATA.findall(text)
    data = json.loads(raw)
    assert [n["id"] for n in data["nodes"]] == [n.id for n in trace.nodes]
    assert [n["step"] for n in data["nodes"]] == [n.step for n in trace.nodes]
    first = data["nodes"][0]
    assert first["caption"].startswith(f"Step 1 of {len(trace.steps)}: {trace.nodes[0].name}")
    assert any(line.startswith("v[0] (gradient arriving") for line in first["details"])
    with_j = [n for n in data["nodes"] if "jacobian" in n]
    assert with_j, "small nodes carry their local Jacobian as a table"
    step = trace.node(with_j[0]["id"])
    assert step.jacobian is not None and len(with_j[0]["jacobian"]) == step.jacobian.size[0]
    modules = {m["path"]: m for m in data["modules"]}
    assert modules["model.3"]["cls"] == "Block" and modules["model.3.inner"]["parent"] == "model.3"
    assert modules["model.3"]["nodes"] == sum(1 for n in trace.nodes if (n.module or "").startswith("model.3"))
    assert data["open_below"] == 1  # the repeated blocks start closed
    assert data["leaves"]["model.0.inner.weight"] == trace.leaves["model.0.inner.weight"].node
    assert not data["partial"]
