"""Trace.summary(): the text a person reads first, and summary_data(): the same as JSON-ready data."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

import tracer
from tests.models import record_mlp, record_transformer

GOLDEN_Z = """\
pass #1: backward of z[1, 4] — 6 steps, 1 leaf, complete
  started at example.py:7

seeds
  output  shape   dtype    v             seed   enters
  z       [1, 4]  float32  [0, 1, 0, 0]  given  node 1

structure: depth 5, width 2; execution order agrees with the graph's topological order
  ops: MulBackward0×2, SelectBackward0×2, AccumulateGrad×1, AddBackward0×1
  cut (constant / detached / no-grad input): node 2 edge 1, node 5 edge 1

leaves
  name  kind  shape   ‖grad‖  grad (this pass)  .grad before → after
  x     leaf  [1, 4]  3.606   [0, 2, 0, 3]      [2, 0, 0, 3] → [2, 2, 0, 6]

accumulation points: 2
  fan-in at node 6 AccumulateGrad (x): 2 parts → [0, 2, 0, 3] (parts add up)
  .grad at node 6 AccumulateGrad (x): 2 parts → [2, 2, 0, 6] (parts add up)

health: no problems found
"""


def _z_trace() -> tracer.Trace:
    """Tutorial 002: z = 2x + 3·x[0,3], seeded e₁ then e₂ without zeroing .grad in between."""
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0]], requires_grad=True)
    z = 2 * x + 3 * x[0, 3]
    z.backward(torch.tensor([[1.0, 0, 0, 0]]), retain_graph=True)
    trace = tracer.trace(z, torch.tensor([[0.0, 1, 0, 0]]))
    return dataclasses.replace(trace, source="/somewhere/example.py:7")


def test_golden_summary_of_tutorial_002() -> None:
    trace = _z_trace()
    assert trace.summary() == GOLDEN_Z
    assert tracer.summary(trace) == GOLDEN_Z
    assert tracer.load(trace.to_json()).summary() == GOLDEN_Z  # from the saved data alone


def test_summary_reports_flags_and_none() -> None:
    class Wrong(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
            (x,) = ctx.saved_tensors
            return 3 * g * x

    x = torch.tensor([1.0, 2.0], requires_grad=True)
    unused = torch.tensor([1.0], requires_grad=True)
    text = tracer.trace(Wrong.apply(x).sum(), names={"x": x, "unused": unused}).summary()
    assert "health: 1 error, 1 warning" in text
    assert "error    wrong-backward  node 2" in text
    assert "unused  leaf  [1]" in text and "None — not on any path from the outputs" in text


def test_incomplete_pass_says_so() -> None:
    class Fails(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
            return x * 1

        @staticmethod
        def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
            raise ValueError("broken backward")

    x = torch.tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match="broken backward") as info:
        tracer.trace((Fails.apply(x) * 2).sum())
    text = info.value.partial_trace.summary()  # type: ignore[attr-defined]
    assert "incomplete" in text.splitlines()[0]
    assert "INCOMPLETE: the pass raised ValueError: broken backward" in text


def test_grad_pass_headline() -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    with tracer.record() as rec:
        torch.autograd.grad((x * x).sum(), [x])
    assert "torch.autograd.grad of" in rec.traces[0].summary().splitlines()[0]


def test_summary_data_is_standard_json_with_the_same_content() -> None:
    x = torch.tensor([0.0, 1.0], requires_grad=True)
    trace = tracer.trace((x.sqrt() * 2).sum())
    data = tracer.summary_data(trace)
    text = json.dumps(data, allow_nan=False)  # non-finite numbers are strings
    back = json.loads(text)
    assert back == data
    assert data["summary_version"] == 1
    assert data["pass"]["steps"] == len(trace.steps) and data["pass"]["kind"] == "backward"
    assert data["structure"]["execution_order_is_topological"] is True
    assert data["structure"]["op_counts"] == {
        "AccumulateGrad": 1,
        "MulBackward0": 1,
        "SqrtBackward0": 1,
        "SumBackward0": 1,
    }
    (leaf,) = data["leaves"]
    assert leaf["name"] == "x" and leaf["grad"]["values"] == ["Infinity", 1.0]
    assert leaf["grad"]["inf"] == 1
    kinds = [(f["kind"], f["severity"]) for f in data["health"]["flags"]]
    assert ("nonfinite", "error") in kinds
    assert data["health"]["ok"] is False
    assert len(data["health"]["profile"]) == len(trace.steps)


def test_summary_data_of_a_transformer() -> None:
    r = record_transformer()
    data = tracer.summary_data(r.trace)
    json.dumps(data, allow_nan=False)
    assert {leaf["name"] for leaf in data["leaves"]} == set(r.grads)
    for leaf in data["leaves"]:
        assert leaf["grad"]["norm"] == pytest.approx(float(r.grads[leaf["name"]].double().norm()), rel=1e-6)
    assert [p["name"] for p in data["accumulation_points"]] == ["NativeLayerNormBackward0", "CloneBackward0"]
    assert "layer.self_attn.in_proj_weight" in tracer.summary(r.trace)


def test_summary_of_an_mlp() -> None:
    """Linear, Tanh, Linear under an MSE loss: ten steps, four parameters, no fan-in, no flags."""
    r = record_mlp()
    data = tracer.summary_data(r.trace)
    assert (
        {leaf["name"] for leaf in data["leaves"]}
        == set(r.grads)
        == {
            "mlp.0.weight",
            "mlp.0.bias",
            "mlp.2.weight",
            "mlp.2.bias",
        }
    )
    for leaf in data["leaves"]:
        assert leaf["grad"]["norm"] == pytest.approx(float(r.grads[leaf["name"]].double().norm()), rel=1e-6)
    assert data["accumulation_points"] == [] and data["health"]["flags"] == [] and data["health"]["ok"]
    assert [p["name"] for p in data["health"]["profile"]][:2] == ["MseLossBackward0", "AddmmBackward0"]
    text = tracer.summary(r.trace)
    assert "10 steps, 4 leaves, complete" in text and "AddmmBackward0×2" in text and "TanhBackward0×1" in text
    assert "accumulation points: none" in text and "health: no problems found" in text
