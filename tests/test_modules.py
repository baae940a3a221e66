"""tracer.record(model=...) tags every backward node with the innermost nn.Module that created it."""

from __future__ import annotations

import torch

import tracer
from tracer.record.modules import MODULE_KEY, ModuleTagger


class Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = torch.nn.Linear(3, 3)
        self.scale = torch.nn.Parameter(torch.tensor(2.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.inner(x)) * self.scale  # tanh and mul belong to Block itself


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(2, 3), Block(), torch.nn.Linear(3, 1))


def test_nodes_carry_the_innermost_module() -> None:
    model = _model()
    x = torch.randn(4, 2, requires_grad=True)
    with tracer.record(model=model) as rec:
        loss = model(x * 1.5).pow(2).sum()
        loss.backward()
    (trace,) = rec.traces
    by_name = {(s.name, s.module) for s in trace.steps}
    assert ("TanhBackward0", "model.1") in by_name
    assert ("MulBackward0", "model.1") in by_name  # * self.scale, inside Block.forward
    assert sum(1 for s in trace.steps if s.name == "AddmmBackward0") == 3
    assert {s.module for s in trace.steps if s.name == "AddmmBackward0"} == {"model.0", "model.1.inner", "model.2"}
    # the loss and the input scaling happen outside the model: untagged; so is the input leaf
    assert {s.module for s in trace.steps if s.name in ("SumBackward0", "PowBackward0")} == {None}
    x_step = trace.node(trace.leaves["x"].node)
    assert x_step.module is None
    # parameters' AccumulateGrad nodes belong to the module that uses them
    assert trace.node(trace.leaves["model.1.scale"].node).module == "model.1"
    assert trace.node(trace.leaves["model.1.inner.weight"].node).module == "model.1.inner"
    assert trace.modules["model"] == "Sequential" and trace.modules["model.1"] == "Block"
    assert trace.modules["model.1.inner"] == "Linear"


def test_gradients_unchanged_and_hooks_removed() -> None:
    model = _model()
    x = torch.randn(4, 2)
    model(x).sum().backward()
    plain = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    with tracer.record(model=model):
        model(x).sum().backward()
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), plain, strict=True))
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks


def test_a_module_called_twice_tags_each_call() -> None:
    shared = torch.nn.Linear(2, 2)

    class Twice(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.shared = shared

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.shared(torch.relu(self.shared(x)))

    model = Twice()
    with tracer.record(model=model) as rec:
        model(torch.randn(3, 2)).sum().backward()
    modules = [s.module for s in rec.traces[0].steps if s.name == "AddmmBackward0"]
    assert modules == ["model.shared", "model.shared"]
    assert [s.module for s in rec.traces[0].steps if s.name == "ReluBackward0"] == ["model"]


def test_tensors_made_before_the_forward_keep_no_tag() -> None:
    model = torch.nn.Linear(2, 2)
    w = torch.randn(2, 2, requires_grad=True)
    outside = w * 3  # made before the module runs, reached through a buffer-like closure below

    class UsesOutside(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return model(x) + outside

    wrapper = UsesOutside()
    with ModuleTagger(wrapper):
        y = wrapper(torch.randn(1, 2))
    assert MODULE_KEY not in outside.grad_fn.metadata
    assert y.grad_fn.metadata[MODULE_KEY] == ("", "UsesOutside")


def test_transformer_layer_paths() -> None:
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    with tracer.record(model=layer) as rec:
        layer(torch.randn(2, 3, 8)).sum().backward()
    modules = {s.module for s in rec.traces[0].steps}
    assert {"layer.linear1", "layer.linear2", "layer.norm1", "layer.norm2", "layer.self_attn"} <= modules
    assert rec.traces[0].leaves["layer.linear1.weight"].grad is not None
