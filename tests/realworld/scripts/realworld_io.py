"""The one thing every real-world script shares: saving the gradients it produced for the harness to compare.

Each script ends with `save_grads({...})`. When GRADTRACE_REALWORLD_GRADS names a file, the dict
(name -> gradient tensor, or None where a leaf got no gradient) is written there with torch.save; sparse
gradients are saved as they are. Without the variable (a person running the script by hand) nothing is written.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import nn

ENV = "GRADTRACE_REALWORLD_GRADS"


def module_grads(model: nn.Module, prefix: str = "") -> dict[str, torch.Tensor | None]:
    """`.grad` of every parameter of `model`, keyed by its dotted name (with `prefix` in front)."""
    return {prefix + name: p.grad for name, p in model.named_parameters()}


def save_grads(grads: Mapping[str, torch.Tensor | None]) -> None:
    target = os.environ.get(ENV)
    if not target:
        return
    cloned = {name: None if g is None else g.detach().clone() for name, g in grads.items()}
    torch.save(cloned, target)
