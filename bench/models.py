"""The reference models of the benchmark: a TransformerEncoder and a way to reach a given node count."""

from __future__ import annotations

import torch


def transformer(layers: int = 12, d_model: int = 256, heads: int = 8, ff: int = 1024) -> torch.nn.Module:
    """nn.TransformerEncoder in training mode (dropout on), float32, the issue's reference configuration."""
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(d_model, heads, ff, batch_first=True)
    return torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False).train()


def batch(d_model: int = 256, batch_size: int = 8, sequence: int = 64) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(batch_size, sequence, d_model)


SCALING_LAYERS = (6, 13, 27, 54)  # about 500, 1,000, 2,000 and 4,000 backward nodes with small_stack()


def small_stack(layers: int) -> tuple[torch.nn.Module, torch.Tensor]:
    """A narrow TransformerEncoder and its batch, for measuring how cost grows with the number of nodes."""
    return transformer(layers=layers, d_model=64, heads=4, ff=256), batch(d_model=64, batch_size=4, sequence=16)


def loss(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    out: torch.Tensor = model(x)
    return out.pow(2).mean()


def count_nodes(output: torch.Tensor) -> int:
    seen: set[object] = set()
    todo = [output.grad_fn]
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        todo.extend(n for n, _ in node.next_functions)
    return len(seen)
