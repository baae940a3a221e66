"""The backward passes gradtrace runs unrecorded on purpose (torch.func's, batched, other threads') and what it says."""

from __future__ import annotations

from typing import Any

import torch

from .backward_call import BackwardCall


def is_batched(t: Any) -> bool:
    try:
        if not isinstance(t, torch.Tensor):
            return False
        # torch.autograd.grad(is_grads_batched=True) batches with the legacy vmap (torch._vmap_internals)
        functorch = torch._C._functorch
        return bool(functorch.is_batchedtensor(t) or functorch.is_legacy_batchedtensor(t))
    except Exception:  # pragma: no cover - functorch internals moved
        return False


def is_functorch(call: BackwardCall) -> bool:
    """Whether this pass runs inside a torch.func transform (grad, vjp, vmap, jacrev, ...) or on its tensors
    (vjp's pullback runs after the transform has exited, on the wrapped tensors it kept)."""
    try:
        functorch = torch._C._functorch
        if functorch.maybe_current_level() is not None:
            return True
        tensors = (*call.outputs, *call.grads, *call.inputs)
        return any(isinstance(t, torch.Tensor) and functorch.is_functorch_wrapped_tensor(t) for t in tensors)
    except Exception:  # pragma: no cover - functorch internals moved
        return False


# Passes run unrecorded on purpose, by reason: (which passes, why), for `Recorder.unrecorded` (one line per pass)
# and the one warning per block (not for batched passes: see recorder.py).
SKIPPED = {
    "func": (
        "inside a torch.func transform (grad, vjp, vmap, jacrev, hessian, ...)",
        "its tensors are torch.func's wrappers, whose values gradtrace does not read; it ran exactly as without "
        "gradtrace (an ordinary backward() or torch.autograd.grad of the same computation is recorded)",
    ),
    "batched": (
        "with batched gradients (torch.autograd.grad(..., is_grads_batched=True))",
        "each gradient is a vmapped batch the recorder cannot summarise; it ran exactly as without gradtrace",
    ),
    "thread": (
        "in another thread (not one the record() block's thread started while the block was open)",
        "a block records its own thread and the threads that thread starts inside it; open a tracer.record() "
        "block in the other thread to record its passes",
    ),
}


SKIPPED_PREFIX = "not recorded, "  # how such a line of Recorder.unrecorded starts (the CLI counts them apart)


def skipped_text(why: str) -> str:
    """The line of `Recorder.unrecorded` for one pass left unrecorded on purpose."""
    which, reason = SKIPPED[why]
    return f"{SKIPPED_PREFIX}{which}: {reason}"
