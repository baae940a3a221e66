"""An independent Jacobian for custom autograd Functions: the forward re-run with central differences in float64.

Why: the one-hot Jacobian comes from calling the node's own backward, so a wrong backward that is still
linear in v (3*g*x where 2*g*x is right) agrees with itself. The forward is the ground truth. It can be
re-run only when the backward node still has the forward's inputs: we accept `ctx.saved_tensors` when they
are exactly the forward's tensor inputs, in order, checked by identity against the node's next edges (the
leaf an AccumulateGrad edge accumulates into, or the tensor whose grad_fn/output_nr the edge points at).

Re-running user code must not change anything the user sees: the forward gets float64 clones (in-place
writes hit the clones), runs under no_grad, and the CPU random state is restored before every call and
afterwards (around it all, local_jacobian's unobserved() keeps every global random state, CUDA's and Python's
`random` too, as the user's pass left it, and shows no warning the re-run raises). A forward that gives
different results under another random state, a point where the one-sided differences disagree (a kink), and
anything that raises all mean "no reference", never a flag.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

NO_REFERENCE = "no independent reference"  # how each such note starts; local_jacobian gives it NoteKind.NO_REFERENCE


class _NoReference(Exception):
    """Why the forward cannot serve as a reference (the message is recorded in the step's note)."""


def numeric_jacobian(
    node: Any,
    grad_outputs: tuple[torch.Tensor | None, ...],
    grad_inputs: tuple[torch.Tensor | None, ...],
    present_out: list[int],
    present_in: list[int],
) -> tuple[torch.Tensor | None, float, str | None]:
    """(J, output size, None) with J in the one-hot layout (rows: present forward outputs flattened, columns:
    present next edges flattened), or (None, 0, why) when the forward cannot give an independent one."""
    try:
        inputs = _forward_inputs(node)
        matrix, size = _central_differences(
            node._forward_cls, inputs, grad_outputs, grad_inputs, present_out, present_in
        )
        return matrix, size, None
    except _NoReference as why:
        return None, 0.0, f"{NO_REFERENCE}: {why}"
    except Exception as exc:  # user code misbehaving must never reach the user's backward pass
        return None, 0.0, f"{NO_REFERENCE}: re-running the forward raised {type(exc).__name__}: {exc}"


def _forward_inputs(node: Any) -> list[torch.Tensor]:
    """The forward's tensor inputs, from ctx.saved_tensors, verified against the node's next edges."""
    edges = node.next_functions
    needs = tuple(getattr(node, "needs_input_grad", ()))
    if len(needs) != len(edges):
        raise _NoReference("the forward takes non-tensor arguments, which the backward node does not keep")
    try:
        saved = tuple(node.saved_tensors)
    except Exception as exc:
        raise _NoReference(f"ctx.saved_tensors cannot be read ({type(exc).__name__}: {exc})") from None
    if len(saved) != len(edges):
        raise _NoReference(
            f"ctx.saved_tensors holds {len(saved)} tensor(s) and the forward took {len(edges)}; they must be "
            "exactly the forward's inputs (ctx.save_for_backward(*inputs)) for the forward to be re-run"
        )
    for k, ((fn, output_nr), t) in enumerate(zip(edges, saved, strict=True)):
        if not isinstance(t, torch.Tensor):
            raise _NoReference(f"saved tensor {k} is None")
        if fn is None:
            same = not t.requires_grad
        elif hasattr(fn, "variable"):
            same = fn.variable is t
        else:
            same = t.grad_fn is fn and t.output_nr == output_nr
        if not same:
            raise _NoReference(
                f"saved tensor {k} is not the forward's input {k}; save exactly the inputs, in order, "
                "to let gradtrace check the backward against the forward"
            )
        if t.device.type != "cpu":
            raise _NoReference(f"input {k} is on {t.device}; the numeric check runs on CPU tensors only")
    return list(saved)


_OTHER_STATE = torch.Generator().manual_seed(0x5EED).get_state()


def _central_differences(
    cls: Any,
    inputs: list[torch.Tensor],
    grad_outputs: tuple[torch.Tensor | None, ...],
    grad_inputs: tuple[torch.Tensor | None, ...],
    present_out: list[int],
    present_in: list[int],
) -> tuple[torch.Tensor, float]:
    # contiguous copies, so one element can be perturbed through a flat view whatever the inputs' strides
    base = [(t.detach().to(torch.float64) if t.is_floating_point() else t.detach()).contiguous() for t in inputs]
    state = torch.get_rng_state()

    def forward(xs: list[torch.Tensor], rng: torch.Tensor = state) -> torch.Tensor:
        torch.set_rng_state(rng)
        with torch.no_grad():
            out = cls.apply(*(x.clone() for x in xs))
        outs = out if isinstance(out, tuple | list) else (out,)
        parts = []
        for k in present_out:
            o = outs[k] if k < len(outs) else None
            expected = grad_outputs[k]
            assert expected is not None
            if not isinstance(o, torch.Tensor) or tuple(o.shape) != tuple(expected.shape):
                raise _NoReference(f"re-running the forward gives output {k} of another shape or kind")
            if not o.is_floating_point():
                raise _NoReference(f"output {k} is not floating point")
            parts.append(o.reshape(-1).double())
        return torch.cat(parts)

    try:
        f0 = forward(base)
        if not torch.equal(f0, forward(base, _OTHER_STATE)):
            raise _NoReference("the forward is random (it gives other results under another random state)")
        if not bool(torch.isfinite(f0).all()):
            raise _NoReference("the forward's output is not finite")
        columns = []
        for e in present_in:
            x = base[e]
            expected = grad_inputs[e]
            assert expected is not None
            if not x.is_floating_point() or tuple(x.shape) != tuple(expected.shape):
                raise _NoReference(f"input {e} cannot be perturbed (not floating point, or of another shape)")
            for j in range(x.numel()):
                columns.append(_column(forward, base, e, j, f0))
    finally:
        torch.set_rng_state(state)
    return torch.stack(columns, 1), float(f0.abs().max()) if f0.numel() else 0.0


# Step for float64 central differences: truncation error ~h², rounding ~eps/h, balanced at eps^(1/3).
_H = torch.finfo(torch.float64).eps ** (1 / 3)


def _column(
    forward: Callable[[list[torch.Tensor]], torch.Tensor], base: list[torch.Tensor], e: int, j: int, f0: torch.Tensor
) -> torch.Tensor:
    x = base[e]
    h = _H * max(1.0, abs(float(x.reshape(-1)[j])))
    plus, minus = list(base), list(base)
    plus[e] = x.clone()
    plus[e].view(-1)[j] += h
    minus[e] = x.clone()
    minus[e].view(-1)[j] -= h
    f_plus, f_minus = forward(plus), forward(minus)
    h = float(plus[e].view(-1)[j] - minus[e].view(-1)[j]) / 2  # the step actually taken, after rounding
    central: torch.Tensor = (f_plus - f_minus) / (2 * h)
    if not bool(torch.isfinite(central).all()):
        raise _NoReference("the forward is not finite next to this point")
    ahead, behind = (f_plus - f0) / h, (f0 - f_minus) / h
    # One-sided slopes differ by ~h·f'' where the forward is smooth, by O(1) at a kink (relu at 0, abs, clamp).
    if bool(((ahead - behind).abs() > 1e-2 * central.abs().clamp(min=1.0)).any()):
        raise _NoReference("the forward is not differentiable at this point (one-sided slopes differ)")
    return central


def numeric_tolerance(dtype: torch.dtype, scale: float, v_size: float, output_size: float) -> float:
    """How far the backward may be from the central differences: the backward's own rounding (in `dtype`)
    plus the differences' error, relative to |v|·|J| and to |v|·|f|."""
    rtol = max(1e-5, 1000 * torch.finfo(dtype).eps)
    return rtol * scale + 1e-9 * v_size * max(1.0, output_size) + math.ulp(0.0)
