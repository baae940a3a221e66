"""Small real models for the analysis tests: an MLP and a transformer encoder layer, with fixed weights."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

import tracer


@dataclass
class Recorded:
    """A model, the trace of one backward pass through it, and torch's own gradients for the same pass."""

    model: torch.nn.Module
    trace: tracer.Trace
    grads: dict[str, torch.Tensor]  # parameter name (as the trace names it) -> .grad after the pass


def mlp(batch: int = 2) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    return model, torch.randn(batch, 3), torch.randn(batch, 2)


def transformer(sequence: int = 3) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32, dropout=0.0, batch_first=True)
    src = torch.randn(1, sequence, 16)
    # A weighted sum, not mean(out**2): after the final LayerNorm, mean(out**2) is nearly constant.
    return layer, src, torch.randn(1, sequence, 16)


def record_mlp(**options: object) -> Recorded:
    model, x, target = mlp()
    loss = torch.nn.functional.mse_loss(model(x), target)
    trace = tracer.trace(loss, names={"mlp": model}, **options)  # type: ignore[arg-type]
    return Recorded(model, trace, {f"mlp.{n}": p.grad.clone() for n, p in model.named_parameters()})


def record_transformer(sequence: int = 3, **options: object) -> Recorded:
    layer, src, weights = transformer(sequence)
    loss = (layer(src) * weights).sum()
    trace = tracer.trace(loss, names={"layer": layer}, **options)  # type: ignore[arg-type]
    return Recorded(layer, trace, {f"layer.{n}": p.grad.clone() for n, p in layer.named_parameters()})


class Boom(torch.autograd.Function):
    """A custom Function whose backward fails: a pass that raises midway."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x * 1

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        raise ValueError("boom in backward")
