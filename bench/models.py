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


def loss(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x).pow(2).mean()


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
