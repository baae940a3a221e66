"""A node's local Jacobian from one-hot calls of the node itself, and the check that its vᵀJ equals v·J."""

from __future__ import annotations

import random
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from ..model.records import Check, Jacobian, NoteKind
from .numeric_reference import numeric_jacobian, numeric_tolerance
from .saved_arguments import saved_arguments

# Set while we call a node ourselves: a backward pass started from inside that call (a reentrant
# checkpoint's backward does this) would accumulate into .grad a second time, so the recorder refuses it.
calling_node = threading.local()


class NestedPassRefused(RuntimeError):
    """Raised by the recorder when a node we call for its Jacobian tries to run a backward pass."""


@dataclass(frozen=True, slots=True, kw_only=True)  # keywords only: a new field never shifts the others
class LocalResult:
    jacobian: Jacobian | None
    check: Check | None
    note: str | None
    note_kind: NoteKind | None = None  # what the note is about (becomes Step.note_kind)
    saved: str | None = None  # what the node saved from its forward call ('self=[1, 2], exponent=2')
    later: Any = None  # past the pass's budget with the graph kept: computes J when read (jacobian_budget.Later)


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
        return _no_jacobian("gradients are not real floating point")
    if _is_python_function(node) and node._forward_cls.__module__.startswith("torch."):
        # torch's own Functions (checkpoint, compiled graphs) free or recompute state when called: never re-call them.
        return _no_jacobian(f"{node.name()} is torch-internal and is not called twice")
    # From here on we call the node (and, for a custom Function, its forward) ourselves: unobserved.
    with unobserved(python=_is_python_function(node)):
        return _computed(node, grad_outputs, grad_inputs, present_out, present_in)


def _computed(
    node: Any,
    grad_outputs: tuple[torch.Tensor | None, ...],
    grad_inputs: tuple[torch.Tensor | None, ...],
    present_out: list[int],
    present_in: list[int],
) -> LocalResult:
    call = _call(node)
    rows: list[torch.Tensor] = []
    calling_node.active = True
    try:
        with torch.no_grad():
            for k in present_out:
                base = grad_outputs[k]
                assert base is not None
                for i in range(base.numel()):
                    args = [torch.zeros_like(g) if g is not None else None for g in grad_outputs]
                    # zeros_like keeps the gradient's strides (a transposed one is not viewable as flat):
                    # index the element instead of writing through view(-1).
                    args[k][_unravel(i, tuple(base.shape))] = 1  # type: ignore[index]
                    rows.append(_row(call(*args), grad_inputs, present_in))
    except NestedPassRefused:
        return _no_jacobian(f"calling {node.name()} starts a backward pass of its own")
    except Exception as exc:  # a node that cannot be called twice: record why, never disturb the pass
        return _no_jacobian(f"calling {node.name()} again raised {type(exc).__name__}: {exc}")
    finally:
        calling_node.active = False
    matrix = torch.stack(rows)
    jac = Jacobian(
        rows=tuple(tuple(g.shape) if g is not None else None for g in grad_outputs),
        cols=tuple(tuple(g.shape) if g is not None else None for g in grad_inputs),
        matrix=tuple(tuple(r) for r in matrix.tolist()),
    )
    check, unchecked = _check(matrix, grad_outputs, grad_inputs, present_out, present_in)
    saved = None if _is_python_function(node) else saved_arguments(node)
    if unchecked == _columns(matrix):
        return LocalResult(
            jacobian=jac,
            check=None,
            note="vᵀJ not checked: every column of J holds Inf or NaN",
            note_kind=NoteKind.UNCHECKED,
            saved=saved,
        )
    unchecked_note = (
        f"vᵀJ checked without {unchecked} element(s) where J holds Inf or NaN (e.g. sqrt'(0))" if unchecked else None
    )
    unchecked_kind = NoteKind.UNCHECKED if unchecked else None
    if not _is_python_function(node):
        return LocalResult(jacobian=jac, check=check, note=unchecked_note, note_kind=unchecked_kind, saved=saved)
    if not check.ok:
        return LocalResult(jacobian=jac, check=check, note=unchecked_note, note_kind=unchecked_kind)
    # The one-hot J came from the same backward, so a wrong backward that is linear in v passes `check`;
    # for custom Functions, compare with the forward itself where it can be re-run.
    calling_node.active = True
    try:
        reference, output_size, why = numeric_jacobian(node, grad_outputs, grad_inputs, present_out, present_in)
    finally:
        calling_node.active = False
    if reference is None:
        return LocalResult(jacobian=jac, check=check, note=why, note_kind=NoteKind.NO_REFERENCE)
    numeric, _ = _check(reference, grad_outputs, grad_inputs, present_out, present_in, output_size=output_size)
    if numeric.ok:
        return LocalResult(jacobian=jac, check=numeric, note=None)
    note = (
        f"the backward disagrees with the forward: vjp differs from v·J by up to {numeric.max_error:.4g} "
        "with J from central differences of the forward in float64"
    )
    return LocalResult(jacobian=jac, check=numeric, note=note, note_kind=NoteKind.DISAGREES)


class _RandomStates:
    """The global random states our extra calls could advance: torch's CPU generator, every CUDA device's
    (only once CUDA is initialised: reading them would initialise it) and, around user code, Python's `random`."""

    __slots__ = ("cpu", "cuda", "python")

    def __init__(self, *, python: bool) -> None:
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None  # type: ignore[no-untyped-call]
        self.python = random.getstate() if python else None

    def restore(self) -> None:
        """Put back what our calls drew from. Only a state that changed is set: the generators are shared by
        every thread, and one that did not change may not be rewound past another thread's draws."""
        if not torch.equal(torch.get_rng_state(), self.cpu):
            torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            now = torch.cuda.get_rng_state_all()
            if any(not torch.equal(a, b) for a, b in zip(now, self.cuda, strict=False)):
                torch.cuda.set_rng_state_all(self.cuda)
        if self.python is not None and random.getstate() != self.python:
            random.setstate(self.python)


# Warnings raised by our own calls are not shown. Not with warnings.catch_warnings(): that swaps the filters of
# every thread at once and, on the way out, resets every module's record of warnings already shown, so a
# user's warning shown once per location would be shown again after each recorded pass. Instead, while any
# thread is inside unobserved(), warnings._showwarnmsg (what both warnings implementations call to show one)
# is a gate that drops what this thread raises inside the block and passes everything else on unchanged.
_inside = threading.local()  # .depth: how deep this thread is in unobserved()
_gate_lock = threading.Lock()
_gate_users = 0  # threads inside unobserved(); the gate is in while this is above 0
_shown_by: Any = None  # what warnings._showwarnmsg was before the gate went in


def _gate(message: Any) -> None:
    if getattr(_inside, "depth", 0):
        return
    _shown_by(message)


@contextmanager
def unobserved(*, python: bool) -> Iterator[None]:
    """Our extra calls of a node (and of a custom Function's forward) leave nothing the user could see: the random
    states are as the user's own pass left them, and no warning they raise is shown (one made an error by the
    filters still raises, into our own except). `python`: user code runs, so Python's `random` is kept too."""
    global _gate_users, _shown_by
    states = _RandomStates(python=python)
    with _gate_lock:
        if _gate_users == 0:
            _shown_by = warnings._showwarnmsg  # type: ignore[attr-defined]
            warnings._showwarnmsg = _gate  # type: ignore[attr-defined]
        _gate_users += 1
    _inside.depth = getattr(_inside, "depth", 0) + 1
    try:
        yield
    finally:
        _inside.depth -= 1
        with _gate_lock:
            _gate_users -= 1
            if _gate_users == 0 and warnings._showwarnmsg is _gate:  # type: ignore[attr-defined]
                warnings._showwarnmsg = _shown_by  # type: ignore[attr-defined]
        states.restore()


def _no_jacobian(why: str) -> LocalResult:
    return LocalResult(jacobian=None, check=None, note=f"no Jacobian: {why}", note_kind=NoteKind.NO_JACOBIAN)


def _unravel(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The row-major index of flat position `flat` in a tensor of `shape` (() for a 0-d tensor)."""
    index = []
    for size in reversed(shape):
        index.append(flat % size)
        flat //= size
    return tuple(reversed(index))


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


def _columns(matrix: torch.Tensor) -> int:
    """How many elements v·J has: one per column of J."""
    return int(matrix.shape[1]) if matrix.dim() == 2 else 0


def _check(
    matrix: torch.Tensor,
    grad_outputs: tuple[torch.Tensor | None, ...],
    grad_inputs: tuple[torch.Tensor | None, ...],
    present_out: list[int],
    present_in: list[int],
    output_size: float | None = None,
) -> tuple[Check, int]:
    """Compare the vᵀJ the node actually sent with v times the J we computed, at the dtype's precision; also
    how many elements could not be compared (J not finite there).

    `output_size` (the forward's largest |output|) marks J as numeric: a looser tolerance, method 'numeric'."""
    # detached: under create_graph=True the gradients require grad, and float() of such a tensor warns
    v = torch.cat([grad_outputs[k].detach().reshape(-1).double().cpu() for k in present_out])  # type: ignore[union-attr]
    sent = torch.cat([grad_inputs[e].detach().reshape(-1).double().cpu() for e in present_in])  # type: ignore[union-attr]
    expected = v @ matrix
    # Inf in J times a zero in v is NaN: such entries say nothing about the size of a rounding error.
    scale = float(torch.nan_to_num(v.abs() @ matrix.abs(), nan=0.0, posinf=0.0).max())
    dtype = next(g.dtype for g in grad_inputs if g is not None)
    if output_size is None:
        tolerance = _tolerance_scale(dtype) * max(scale, 1.0)
    else:
        tolerance = numeric_tolerance(dtype, scale, float(v.abs().sum()), output_size)
    diff = (expected - sent).abs()
    # Equal non-finite entries (NaN in v gives NaN in both) are a NaN problem, not a wrong backward.
    agree = (expected == sent) | (torch.isnan(expected) & torch.isnan(sent))
    # A column of J holding Inf or NaN (sqrt'(0) = inf; 0/0 in a one-hot row) gives v·J no defined value
    # there, so the element cannot be checked: leave it out unless both sides agree anyway.
    unchecked = ~torch.isfinite(matrix).all(0) & ~agree
    counted = torch.where(agree | unchecked, torch.zeros_like(diff), diff)
    error = float(counted.max()) if counted.numel() else 0.0
    ok = error <= tolerance  # False for NaN
    method = "one-hot" if output_size is None else "numeric"
    return Check(ok=ok, max_error=error, tolerance=tolerance, method=method), int(unchecked.sum())
