"""torch.func's backward passes: which ones gradtrace can record, what to call them, and their values unwrapped."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import torch

from .backward_call import BackwardCall

# The functions of torch/_functorch a pass runs under (their __qualname__), as the user called them.
_TRANSFORMS = {
    "grad.<locals>.wrapper": "torch.func.grad",
    "grad_and_value.<locals>.wrapper": "torch.func.grad_and_value",
    "_vjp_with_argnums.<locals>.wrapper": "torch.func.vjp's pullback",
    "jacrev.<locals>.wrapper_fn": "torch.func.jacrev",
    "jacfwd.<locals>.wrapper_fn": "torch.func.jacfwd",
    "vmap.<locals>.wrapped": "torch.func.vmap",
}
_FUNCTORCH_DIR = os.sep + os.path.join("torch", "_functorch") + os.sep


def _functorch() -> Any:
    return torch._C._functorch


def is_wrapped(t: torch.Tensor) -> bool:
    """Whether t is one of torch.func's wrappers (a transform's level, vmap's batch)."""
    try:
        return bool(_functorch().is_functorch_wrapped_tensor(t))
    except Exception:  # pragma: no cover - functorch internals moved
        return False


def in_transform(call: BackwardCall) -> bool:
    """Whether this pass runs inside a torch.func transform (grad, vjp, vmap, jacrev, ...) or on its tensors
    (vjp's pullback runs after the transform has exited, on the wrapped tensors it kept)."""
    try:
        functorch = _functorch()
        if functorch.maybe_current_level() is not None:
            return True
        tensors = (*call.outputs, *call.grads, *call.inputs)
        return any(isinstance(t, torch.Tensor) and functorch.is_functorch_wrapped_tensor(t) for t in tensors)
    except Exception:  # pragma: no cover - functorch internals moved
        return False


def unwrapped(t: torch.Tensor) -> torch.Tensor | None:
    """The plain tensor a torch.func wrapper stands for, read through every level (grad of grad wraps twice);
    None when a level holds something other than the value itself: vmap's batch (one tensor for many samples,
    the batch dimension among its own), a functionalized tensor, or a wrapper torch does not open."""
    try:
        functorch = _functorch()
        while functorch.is_functorch_wrapped_tensor(t):
            if functorch.is_batchedtensor(t) or functorch.is_functionaltensor(t):
                return None
            t = functorch.get_unwrapped(t)
        return None if functorch.is_legacy_batchedtensor(t) or functorch.is_functionaltensor(t) else t
    except Exception:  # pragma: no cover - functorch internals moved
        return None


def recordable(call: BackwardCall) -> bool:
    """Whether a pass inside torch.func can be recorded truthfully: only torch.func.grad's levels are active
    (grad, grad_and_value, vjp, grad of grad; none of vmap, jvp, functionalize), whose wrappers hold the very values
    they stand for, a level down, and every tensor the pass starts from opens to a plain tensor. jacrev and hessian
    batch their rows with vmap, so theirs are not recorded (jacrev(..., chunk_size=1) loops over the rows with
    vjp's pullback instead: those are)."""
    try:
        functorch = _functorch()
        stack = functorch.get_interpreter_stack() or []
        if any(interpreter.key() != functorch.TransformType.Grad for interpreter in stack):
            return False
    except Exception:  # pragma: no cover - functorch internals moved
        return False
    tensors = (*call.outputs, *call.grads, *call.inputs)
    return all(unwrapped(t) is not None for t in tensors if isinstance(t, torch.Tensor))


def transform_label(frame: FrameType | None = None) -> str:
    """The torch.func transforms the pass runs in, innermost first, e.g. 'torch.func.grad in torch.func.grad'
    (the inner pass of a grad of grad), from the calls on the stack."""
    found: list[str] = []
    frame = frame if frame is not None else sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        name = _TRANSFORMS.get(getattr(code, "co_qualname", ""))  # Python 3.10 has no co_qualname: 'torch.func'
        if name is not None and _FUNCTORCH_DIR in os.path.abspath(code.co_filename):
            found.append(name)
        frame = frame.f_back
    return " in ".join(found) if found else "torch.func"


@contextmanager
def outside_transforms() -> Iterator[None]:
    """gradtrace's own tensor work during a transform's pass: with torch.func's dispatch off, what it allocates
    or computes is a plain tensor, not a wrapper at the transform's level (which dies with the level: one kept
    in a cache or a pool broke every later pass of the process). Never around the user's own computation."""
    with torch._C._DisableFuncTorch():
        yield
