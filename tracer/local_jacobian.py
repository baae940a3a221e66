"""A node's local Jacobian from one-hot calls of the node itself, and the check that its vᵀJ equals v·J."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import torch

from .model import Check, Jacobian

# Set while we call a node ourselves: a backward pass started from inside that call (a reentrant
# checkpoint's backward does this) would accumulate into .grad a second time, so the recorder refuses it.
calling_node = threading.local()


class NestedPassRefused(RuntimeError):
    """Raised by the recorder when a node we call for its Jacobian tries to run a backward pass."""


@dataclass(frozen=True, slots=True)
class LocalResult:
    jacobian: Jacobian | None
    check: Check | None
    note: str | None


def _is_python_function(node: Any) -> bool:
    return hasattr(node, "_forward_cls")


def _call(node: Any) -> Any:
    """How to invoke a node: C++ nodes are callable, custom Functions expose their backward as .apply."""
    return node.apply if _is_python_function(node) else node


def _tolerance_scale(dtype: torch.dtype) -> float:
    return 64 * torch.finfo(dtype).eps if dtype.is_floating_point else 0.0


def local_jacobian(
    node: Any,
    grad_outputs: tuple[torch.Tensor | None, ...],
    grad_inputs: tuple[torch.Tensor | None, ...],
    limit: int,
) -> LocalResult | None:
    """J of `node` (rows: flattened forward outputs that got a gradient; columns: next edges that got one).

    Called from the node's post-hook, where the tensors it saved are still alive, so this needs no
    retain_graph and does not change the graph's lifetime. Returns None when the node is too large.
    """
    present_out = [k for k, g in enumerate(grad_outputs) if g is not None]
    present_in = [e for e, g in enumerate(grad_inputs) if g is not None]
    if not present_out or not present_in:
        return None
    n_rows = sum(g.numel() for g in grad_outputs if g is not None)
    n_cols = sum(g.numel() for g in grad_inputs if g is not None)
    if n_rows > limit or n_cols > limit or n_rows == 0 or n_cols == 0:
        return None
    tensors = [g for g in (*grad_outputs, *grad_inputs) if g is not None]
    if any(not g.is_floating_point() for g in tensors):
        return LocalResult(None, None, "no Jacobian: gradients are not real floating point")
    if _is_python_function(node) and node._forward_cls.__module__.startswith("torch."):
        # torch's own Functions (checkpoint, compiled graphs) free or recompute state when called: never re-call them.
        return LocalResult(None, None, f"no Jacobian: {node.name()} is torch-internal and is not called twice")
    call = _call(node)
    rows: list[torch.Tensor] = []
    calling_node.active = True
    try:
        with torch.no_grad():
            for k in present_out:
                base = grad_outputs[k]
                assert base is not None
                for i in range(base.numel()):
                    # contiguous: zeros_like would copy a transposed gradient's strides, and view(-1) needs none
                    args = [
                        torch.zeros_like(g, memory_format=torch.contiguous_format) if g is not None else None
                        for g in grad_outputs
                    ]
                    args[k].view(-1)[i] = 1  # type: ignore[union-attr]
                    rows.append(_row(call(*args), grad_inputs, present_in))
    except NestedPassRefused:
        return LocalResult(None, None, f"no Jacobian: calling {node.name()} starts a backward pass of its own")
    except Exception as exc:  # a node that cannot be called twice: record why, never disturb the pass
        return LocalResult(None, None, f"no Jacobian: calling {node.name()} again raised {type(exc).__name__}: {exc}")
    finally:
        calling_node.active = False
    matrix = torch.stack(rows)
    jac = Jacobian(
        rows=tuple(tuple(g.shape) if g is not None else None for g in grad_outputs),
        cols=tuple(tuple(g.shape) if g is not None else None for g in grad_inputs),
        matrix=tuple(tuple(r) for r in matrix.tolist()),
    )
    return LocalResult(jac, _check(matrix, grad_outputs, grad_inputs, present_out, present_in), None)


def _row(result: Any, grad_inputs: tuple[torch.Tensor | None, ...], present_in: list[int]) -> torch.Tensor:
    out = result if isinstance(result, tuple | list) else (result,)
    parts = []
    for e in present_in:
        g = out[e] if e < len(out) else None
        ref = grad_inputs[e]
        assert ref is not None
        if g is None:
            parts.append(torch.zeros(ref.numel(), dtype=torch.float64))
            continue
        if g.shape != ref.shape:
            # The engine sums a broadcast input's gradient down to the input's shape after the node runs
            # (validate_outputs); a direct call returns it unreduced, so reduce it the same way.
            g = g.sum_to_size(ref.shape)
        parts.append(g.reshape(-1).double().cpu())
    return torch.cat(parts)


def _check(
    matrix: torch.Tensor,
    grad_outputs: tuple[torch.Tensor | None, ...],
    grad_inputs: tuple[torch.Tensor | None, ...],
    present_out: list[int],
    present_in: list[int],
) -> Check:
    """Compare the vᵀJ the node actually sent with v times the J we computed, at the dtype's precision."""
    v = torch.cat([grad_outputs[k].reshape(-1).double().cpu() for k in present_out])  # type: ignore[union-attr]
    sent = torch.cat([grad_inputs[e].reshape(-1).double().cpu() for e in present_in])  # type: ignore[union-attr]
    expected = v @ matrix
    scale = float((v.abs() @ matrix.abs()).max())
    dtype = next(g.dtype for g in grad_inputs if g is not None)
    tolerance = _tolerance_scale(dtype) * max(scale, 1.0)
    diff = (expected - sent).abs()
    # Equal non-finite entries (NaN in v gives NaN in both) are a NaN problem, not a wrong backward.
    agree = (expected == sent) | (torch.isnan(expected) & torch.isnan(sent))
    error = float(torch.where(agree, torch.zeros_like(diff), diff).max())
    ok = error <= tolerance  # False for NaN
    return Check(ok=ok, max_error=error, tolerance=tolerance)
