"""The backward passes gradtrace runs unrecorded on purpose (vmapped torch.func, batched, other threads'), and why."""

from __future__ import annotations

from typing import Any

import torch


def is_batched(t: Any) -> bool:
    try:
        if not isinstance(t, torch.Tensor):
            return False
        # torch.autograd.grad(is_grads_batched=True) batches with the legacy vmap (torch._vmap_internals)
        functorch = torch._C._functorch
        return bool(functorch.is_batchedtensor(t) or functorch.is_legacy_batchedtensor(t))
    except Exception:  # pragma: no cover - functorch internals moved
        return False


# Passes run unrecorded on purpose, by reason: (which passes, why), for `Recorder.unrecorded` (one line per pass)
# and the one warning per block (not for batched passes: see recorder.py).
SKIPPED = {
    "func": (
        "inside a torch.func transform that batches or carries tangents (vmap, and jacrev, jacfwd and hessian, "
        "which batch their rows with vmap; jvp; functionalize)",
        "each of its gradients is a batch of per-sample gradients (or a dual number) that one trace cannot show "
        "truthfully; it ran exactly as without gradtrace (passes of torch.func.grad, grad_and_value and vjp's "
        "pullback are recorded, and jacrev(..., chunk_size=1) records one pass per row)",
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
