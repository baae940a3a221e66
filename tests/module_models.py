"""Small real models recorded with module tags, and torch's own gradients at every module boundary to check against."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

import tracer
from tracer import Trace


class Block(torch.nn.Module):
    """A module with a child (inner), a parameter of its own (scale) and operations of its own (tanh, *)."""

    def __init__(self, unused: bool = False) -> None:
        super().__init__()
        self.inner = torch.nn.Linear(3, 3)
        self.scale = torch.nn.Parameter(torch.tensor(2.0))
        if unused:
            self.spare = torch.nn.Parameter(torch.ones(2))  # never used in forward: gets no gradient

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.inner(x)) * self.scale


@dataclass
class Boundary:
    """What torch says crossed one module's boundary in the same computation."""

    into: torch.Tensor  # dL/d(output): the gradient entering the module
    out: torch.Tensor | None  # dL/d(input) through this module only (None: its input needs no gradient)


@dataclass
class Recorded:
    trace: Trace
    model: torch.nn.Module
    grads: dict[str, torch.Tensor]  # parameter name as the trace names it -> its .grad after the pass
    boundaries: dict[str, Boundary]  # module path -> torch's gradients at its boundary


def _boundaries(model: torch.nn.Module, run: object, watch: dict[str, torch.nn.Module]) -> dict[str, Boundary]:
    """Run the forward again with hooks keeping each watched module's input and output, and ask torch for dL/d of
    them. A module's input may be used elsewhere too, so the gradient it sends is d<g, f(x)>/dx with g fixed."""
    if not watch:
        return {}
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    handles = []
    for path, module in watch.items():

        def hook(m: torch.nn.Module, args: tuple[torch.Tensor, ...], output: object, path: str = path) -> None:
            out = output[0] if isinstance(output, tuple) else output
            assert isinstance(out, torch.Tensor)
            seen[path] = (args[0], out)

        handles.append(module.register_forward_hook(hook))
    try:
        assert callable(run)
        loss = run()
    finally:
        for h in handles:
            h.remove()
    outs = [seen[p][1] for p in watch]
    gs = torch.autograd.grad(loss, outs, retain_graph=True)
    result = {}
    for (path, module), g in zip(watch.items(), gs, strict=True):
        x, _ = seen[path]
        sent = None
        if x.requires_grad:
            probe = x.detach().requires_grad_(True)
            with torch.enable_grad():
                y = module(probe)
                y = y[0] if isinstance(y, tuple) else y
                (sent,) = torch.autograd.grad(y, probe, grad_outputs=g)
        result[path] = Boundary(g.detach(), sent)
    return result


def nested(capture: str = "full", unused: bool = False) -> Recorded:
    """Sequential(Linear(2, 3), Block, Linear(3, 1)) on x * 1.5 (outside the model), loss (...)**2 summed."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), Block(unused), torch.nn.Linear(3, 1)).double()
    x = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)

    def run() -> torch.Tensor:
        return model(x * 1.5).pow(2).sum()

    with tracer.record(model=model, capture=capture, jacobian_limit=0) as rec:  # type: ignore[arg-type]
        run().backward()
    (trace,) = rec.traces
    grads = {f"model.{n}": p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    watch = {"model": model, "model.0": model[0], "model.1": model[1], "model.1.inner": model[1].inner}
    watch["model.2"] = model[2]
    return Recorded(dataclasses.replace(trace, source=None), model, grads, _boundaries(model, run, watch))


def encoder(
    layers: int = 3, capture: str = "stats", d_model: int = 8, sequence: int = 3, boundaries: bool = True
) -> Recorded:
    """nn.TransformerEncoder (dropout 0, float64) on an input that needs a gradient; a weighted-sum loss (the sum
    of squares after the final LayerNorm would be nearly constant)."""
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(d_model, 2, 2 * d_model, dropout=0.0, batch_first=True)
    model = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False).double()
    src = torch.randn(2, sequence, d_model, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(2, sequence, d_model, dtype=torch.float64)

    def run() -> torch.Tensor:
        return (model(src) * weights).sum()

    with tracer.record(model=model, capture=capture, jacobian_limit=0) as rec:  # type: ignore[arg-type]
        run().backward()
    (trace,) = rec.traces
    grads = {f"model.{n}": p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    watch: dict[str, torch.nn.Module] = {}
    for i, block in enumerate(model.layers if boundaries else ()):
        watch[f"model.layers.{i}"] = block
        watch[f"model.layers.{i}.linear1"] = block.linear1
        watch[f"model.layers.{i}.linear2"] = block.linear2
    return Recorded(dataclasses.replace(trace, source=None), model, grads, _boundaries(model, run, watch))
