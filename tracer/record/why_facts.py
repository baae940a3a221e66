"""What `why` needs from live objects, read once into plain records: the target tensor's facts, the names of the
tensors in the user's scope, and a dotted name (`model.fc.weight`) looked up in a script's namespace."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..model.errors import GradtraceError
from ..model.why_records import GradState, TargetFacts
from .forward_record import ForwardRecorder
from .names import named_parameters
from .tensors import dtype_name


def is_tensor(value: Any) -> bool:
    return isinstance(value, torch.Tensor)


def target_facts(tensor: torch.Tensor, name: str, forward: ForwardRecorder | None) -> TargetFacts:
    """The target as it is now. A non-leaf's .grad is read only when it retains it (reading it otherwise makes
    torch warn, and it is None by design)."""
    keeps = tensor.is_leaf or tensor.retains_grad
    grad = tensor.grad if keeps else None
    state: GradState = "none"
    share = None
    if grad is not None:
        with torch.no_grad():
            zeros = int((grad == 0).sum().item()) if grad.numel() else 0
        share = zeros / grad.numel() if grad.numel() else 0.0
        state = "zero" if zeros == grad.numel() else "some"
    return TargetFacts(
        name=name,
        serial=None if forward is None else forward.serial_of(tensor),
        shape=tuple(tensor.shape),
        dtype=dtype_name(tensor.dtype),
        is_leaf=tensor.is_leaf,
        requires_grad=tensor.requires_grad,
        retains_grad=tensor.retains_grad,
        grad_fn=None if tensor.grad_fn is None else type(tensor.grad_fn).__name__,
        grad=state,
        zero_share=share,
    )


def scope_names(scope: Mapping[str, Any], forward: ForwardRecorder) -> dict[int, str]:
    """serial -> the variable holding that tensor (a module's parameters as `model.fc.weight`)."""
    names: dict[int, str] = {}
    for key, value in list(scope.items()):
        if key.startswith("_"):
            continue
        if isinstance(value, torch.Tensor):
            serial = forward.serial_of(value)
            if serial is not None:
                names.setdefault(serial, key)
        elif isinstance(value, torch.nn.Module):
            for pname, param in named_parameters(value):
                serial = forward.serial_of(param)
                if serial is not None:
                    names.setdefault(serial, f"{key}.{pname}")
    return names


def name_in(scope: Mapping[str, Any], tensor: torch.Tensor) -> str | None:
    """The variable in `scope` holding `tensor` (or the parameter path of a module there)."""
    for key, value in list(scope.items()):
        if value is tensor and not key.startswith("_"):
            return key
    for key, value in list(scope.items()):
        if isinstance(value, torch.nn.Module) and not key.startswith("_"):
            for pname, param in named_parameters(value):
                if param is tensor:
                    return f"{key}.{pname}"
    return None


def look_up(scope: Mapping[str, Any], name: str, where: str) -> torch.Tensor:
    """`name` (dotted: `model.fc.weight`, `model.layers.0.bias`) in a namespace; a clear error when it is not
    there or not a tensor."""
    head, *rest = name.split(".")
    if head not in scope:
        tensors = sorted(k for k, v in scope.items() if isinstance(v, torch.Tensor | torch.nn.Module))
        listed = ", ".join(tensors[:12]) or "none"
        raise GradtraceError(
            f"there is no variable {head!r} in {where} after it ran; give --leaf the name of a tensor or "
            f"parameter there (tensors and modules there: {listed})"
        )
    value: Any = scope[head]
    for i, part in enumerate(rest):
        if not hasattr(value, part):
            raise GradtraceError(
                f"{'.'.join([head, *rest[:i]])} has no attribute {part!r}, so {name!r} names nothing in {where}; "
                "give the parameter's path as model.named_parameters() spells it (e.g. model.fc.weight)"
            )
        value = getattr(value, part)
    if not isinstance(value, torch.Tensor):
        kind = type(value).__name__
        raise GradtraceError(
            f"{name!r} in {where} is {'an' if kind[:1].lower() in 'aeiou' else 'a'} {kind}, not a tensor: why "
            "explains a tensor's gradient; name a tensor or a parameter (e.g. model.fc.weight)"
        )
    return value


def is_module(value: Any) -> bool:
    return isinstance(value, torch.nn.Module)
