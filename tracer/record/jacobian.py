"""`tracer.jacobian`: the full Jacobian from one backward pass per output element with a one-hot seed.

This is what the tutorials do by hand (`y.backward(one_hot, retain_graph=True)`, read x.grad, zero it,
repeat), done with torch.autograd.grad so the user's .grad is never touched.

How the rows are computed, and what "recorded" means:
- 'vmap': all rows in one batched pass (`is_grads_batched=True`). The recorder cannot see inside a
  vmapped pass (its hooks would see batched tensors), so it lets such passes through unrecorded. With
  record=True every row is then also run as an ordinary one-hot pass inside tracer.record(), giving one
  Trace per row, and each replayed row must equal the vmapped row (`replay_max_error`). With record=False
  only the batched pass runs: the fast way to get just the matrix.
- 'loop': one ordinary one-hot pass per row, each recorded when record=True. Used when vmap does not
  apply: a single row, a function vmap cannot batch (it raises), or method='loop'.
The result is checked against torch.autograd.functional.jacobian when `outputs` is a function (it re-runs
the function on fresh inputs); given tensors only, there is no function to re-run and no check.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from ..model.records import JACOBIAN_LIMIT, MAX_VALUES, Capture, Options, Trace
from ..model.seam import upstairs
from ..model.textfmt import num, shape
from .names import NameBook, user_frame
from .recorder import paused, record

Method = Literal["auto", "vmap", "loop"]
METHODS: tuple[str, ...] = ("auto", "vmap", "loop")
REFERENCE = "torch.autograd.functional.jacobian"


@dataclass(frozen=True)
class JacobianCheck:
    """How the assembled matrix compares with an independent computation."""

    ok: bool
    max_error: float
    tolerance: float
    reference: str = REFERENCE


@dataclass(frozen=True, repr=False)
class JacobianResult:
    """The Jacobian as one matrix: rows = outputs flattened and concatenated, columns = inputs likewise."""

    matrix: torch.Tensor
    output_shapes: tuple[tuple[int, ...], ...]
    input_shapes: tuple[tuple[int, ...], ...]
    output_names: tuple[str, ...]
    input_names: tuple[str, ...]
    method: Literal["vmap", "loop"]
    fallback: str | None  # why vmap was not used, when it was not
    traces: tuple[Trace, ...]  # one recorded pass per row, in row order (empty when record=False)
    replay_max_error: float | None  # vmap only: largest |recorded row - vmapped row|
    check: JacobianCheck | None
    check_note: str | None  # why there is no check
    notes: tuple[str, ...] = ()  # warnings torch gave while we computed
    single_output: bool = True  # outputs given as one tensor (or the function returned one): as_functional()
    single_input: bool = True  # inputs given as one tensor

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.matrix.shape[0]), int(self.matrix.shape[1])

    def block(self, output: int = 0, input: int = 0) -> torch.Tensor:
        """d output / d input shaped like torch.autograd.functional.jacobian: output.shape + input.shape."""
        rows = _offsets(self.output_shapes)
        cols = _offsets(self.input_shapes)
        part = self.matrix[rows[output] : rows[output + 1], cols[input] : cols[input + 1]]
        return part.reshape(*self.output_shapes[output], *self.input_shapes[input])

    def as_functional(self) -> Any:
        """The blocks nested the way torch.autograd.functional.jacobian returns them for the same call."""
        outs, ins = len(self.output_shapes), len(self.input_shapes)
        rows = [tuple(self.block(i, j) for j in range(ins)) for i in range(outs)]
        if self.single_input and self.single_output:
            return rows[0][0]
        if self.single_output:
            return rows[0]
        if self.single_input:
            return tuple(r[0] for r in rows)
        return tuple(rows)

    def _recorded_text(self) -> str:
        if not self.traces:
            return "no passes (record=False)"
        text = f"{len(self.traces)} one-hot pass{'es' if len(self.traces) != 1 else ''} in .traces"
        if self.replay_max_error is not None:
            agree = "equal to" if self.replay_max_error == 0 else "within"
            text += f", {agree} the vmapped rows (max difference {num(self.replay_max_error)})"
        return text

    def _method_text(self) -> str:
        how = "vmap (is_grads_batched=True, one batched pass)" if self.method == "vmap" else "loop (one pass per row)"
        return how + (f"; not vmap: {self.fallback}" if self.fallback else "")

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return upstairs().mimebundle(self, include=include, exclude=exclude)

    def __repr__(self) -> str:
        rows, cols = self.shape
        outs = ", ".join(f"{n}{shape(s)}" for n, s in zip(self.output_names, self.output_shapes, strict=True))
        ins = ", ".join(f"{n}{shape(s)}" for n, s in zip(self.input_names, self.input_shapes, strict=True))
        lines = [
            f"<tracer.jacobian of {outs} w.r.t. {ins}: {rows} × {cols} {str(self.matrix.dtype).removeprefix('torch.')}",
            f" method: {self._method_text()}",
            f" recorded: {self._recorded_text()}",
        ]
        if self.check is not None:
            verdict = "equals" if self.check.ok else "DIFFERS FROM"
            lines.append(
                f" check: {verdict} {self.check.reference} "
                f"(max error {num(self.check.max_error)}, tolerance {num(self.check.tolerance)})"
            )
        else:
            lines.append(f" check: none ({self.check_note})")
        lines.extend(f" note: {n}" for n in self.notes)
        lines.append(_matrix_text(self) + ">")
        return "\n".join(lines)


def _offsets(shapes: Sequence[tuple[int, ...]]) -> list[int]:
    out = [0]
    for s in shapes:
        out.append(out[-1] + math.prod(s))
    return out


def element_labels(names: Sequence[str], shapes: Sequence[tuple[int, ...]]) -> list[str]:
    """One label per element, row-major: `x[0,1]` (or just `x` for a scalar), for a Jacobian's rows or columns."""
    labels = []
    for name, s in zip(names, shapes, strict=True):
        for flat in range(math.prod(s)):
            index = []
            for d in reversed(s):
                index.append(flat % d)
                flat //= d
            labels.append(f"{name}[{','.join(str(i) for i in reversed(index))}]" if s else name)
    return labels


def _matrix_text(result: JacobianResult, limit: int = 12) -> str:
    rows, cols = result.shape
    if rows > limit or cols > limit:
        m = result.matrix.double()
        low, high = num(float(m.min())), num(float(m.max()))
        return f" matrix: {rows} × {cols}, ‖J‖_F = {num(float(m.norm()))}, entries in [{low}, {high}]"
    row_labels = element_labels(result.output_names, result.output_shapes)
    col_labels = element_labels(result.input_names, result.input_shapes)
    cells = [[num(float(v)) for v in row] for row in result.matrix.tolist()]
    left = max((len(r) for r in row_labels), default=0)
    widths = [max([len(c), *(len(r[j]) for r in cells)]) for j, c in enumerate(col_labels)]
    lines = [" " + " " * left + "  " + "  ".join(c.rjust(w) for c, w in zip(col_labels, widths, strict=True))]
    for label, row in zip(row_labels, cells, strict=True):
        lines.append(" " + label.ljust(left) + "  " + "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    return "\n".join(lines)


def jacobian(
    outputs: torch.Tensor | Sequence[torch.Tensor] | Callable[..., Any],
    inputs: torch.Tensor | Sequence[torch.Tensor],
    *,
    method: Method = "auto",
    record: bool = True,
    check: bool = True,
    retain_graph: bool | None = None,
    names: Sequence[str] | None = None,
    capture: Capture = "auto",
    max_values: int = MAX_VALUES,
    jacobian_limit: int = JACOBIAN_LIMIT,
) -> JacobianResult:
    """The Jacobian of `outputs` with respect to `inputs`, one backward pass per output element.

    `outputs`: tensors already computed from `inputs`, or a function called as `outputs(*inputs)` (then
    the result is also checked against torch.autograd.functional.jacobian). `method`: 'auto' uses vmap
    (is_grads_batched) when it applies and falls back to a loop; 'vmap' and 'loop' ask for one.
    `record`: keep one Trace per row (see the module notes). `retain_graph`: for given tensors, keep the
    graph after the last pass (default False, as torch.autograd.grad; a vmapped pass with record=False
    always keeps it, since the loop needs it should vmap fail). `names`: input names.
    The user's .grad is never touched: every pass is torch.autograd.grad.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method: {method!r} (must be one of {list(METHODS)})")
    p = _prepare(outputs, inputs, names, retain_graph)
    ys, xs = p.outputs, p.inputs
    rows = _rows(p, method, record, Options(capture=capture, max_values=max_values, jacobian_limit=jacobian_limit))
    result_check, check_note = _checked(p, rows.matrix, check)
    return JacobianResult(
        matrix=rows.matrix,
        output_shapes=tuple(tuple(y.shape) for y in ys),
        input_shapes=tuple(tuple(x.shape) for x in xs),
        output_names=p.output_names,
        input_names=p.input_names,
        method=rows.method,
        fallback=rows.fallback,
        traces=rows.traces,
        replay_max_error=rows.replay_error,
        check=result_check,
        check_note=check_note,
        notes=rows.notes,
        single_output=p.single_output,
        single_input=isinstance(inputs, torch.Tensor),
    )


@dataclass(frozen=True)
class _Rows:
    """The matrix and how it was computed."""

    matrix: torch.Tensor
    method: Literal["vmap", "loop"]
    fallback: str | None  # why not vmap
    notes: tuple[str, ...]
    traces: tuple[Trace, ...]
    replay_error: float | None  # vmap's rows against the recorded loop's


def _rows(p: _Problem, method: Method, record: bool, opts: Options) -> _Rows:
    """One row per output element: by vmap when it applies (replayed by the loop when recorded), else by a loop."""
    ys, xs, dtype = p.outputs, p.inputs, _common_dtype(p.outputs, p.inputs)
    labels = dict(zip(p.input_names, xs, strict=True))
    options = (opts.capture, opts.max_values, opts.jacobian_limit)
    fallback: str | None = None
    notes: list[str] = []
    matrix: torch.Tensor | None = None
    if method == "loop":
        fallback = "method='loop' was asked for"
    elif sum(y.numel() for y in ys) == 1:
        fallback = "a single output element needs a single pass"
    else:
        # Retain the graph through the vmapped attempt: if vmap fails halfway, the loop still needs it.
        matrix, fallback, notes = _by_vmap(ys, xs, dtype)
    if matrix is None:
        matrix, traces = _by_loop(ys, xs, dtype, p.keep, labels, *options, record)
        return _Rows(matrix, "loop", fallback, tuple(notes), traces, None)
    if not record:
        return _Rows(matrix, "vmap", fallback, tuple(notes), (), None)
    replay, traces = _by_loop(ys, xs, dtype, p.keep, labels, *options, True)
    return _Rows(matrix, "vmap", fallback, tuple(notes), traces, _max_abs(replay - matrix))


def _checked(p: _Problem, matrix: torch.Tensor, check: bool) -> tuple[JacobianCheck | None, str | None]:
    """The comparison with torch's own Jacobian, or why there is none."""
    if not check:
        return None, "check=False"
    if p.func is None:
        return None, f"outputs were given as tensors; pass the function itself to compare with {REFERENCE}"
    return _reference_check(p.func, p.given, matrix, p.outputs, p.single_output), None


@dataclass(frozen=True)
class _Problem:
    """The call, normalised: tensors to differentiate, their names, and how to treat the graph."""

    outputs: tuple[torch.Tensor, ...]
    inputs: tuple[torch.Tensor, ...]  # what the passes differentiate with respect to
    given: tuple[torch.Tensor, ...]  # the caller's inputs (the function is re-run on copies of these)
    func: Callable[..., Any] | None
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    single_output: bool
    keep: bool  # keep the graph after the last pass


def _prepare(outputs: Any, inputs: Any, names: Sequence[str] | None, retain_graph: bool | None) -> _Problem:
    xs = _tensors(inputs, "inputs")
    for i, x in enumerate(xs):
        if not x.is_floating_point():
            raise TypeError(f"input {i} is a {x.dtype} tensor; a Jacobian needs floating-point inputs")
    if callable(outputs) and not isinstance(outputs, torch.Tensor):
        # our own graph on detached copies: gradients can never reach the caller's tensors
        leaves = tuple(x.detach().requires_grad_(True) for x in xs)
        with torch.enable_grad():
            returned = outputs(*leaves)
        ys = _tensors(returned, "the function's result")
        problem = _Problem(
            outputs=ys,
            inputs=leaves,
            given=xs,
            func=outputs,
            input_names=_input_names(names, outputs, len(xs)),
            output_names=tuple("output" if len(ys) == 1 else f"output{i}" for i in range(len(ys))),
            single_output=isinstance(returned, torch.Tensor),
            keep=False,
        )
    else:
        ys = _tensors(outputs, "outputs")
        book = NameBook(None, user_frame())
        problem = _Problem(
            outputs=ys,
            inputs=xs,
            given=xs,
            func=None,
            input_names=tuple(names) if names is not None else _book_names(book, xs, "input"),
            output_names=_book_names(book, ys, "output"),
            single_output=isinstance(outputs, torch.Tensor),
            keep=bool(retain_graph),
        )
    if len(problem.input_names) != len(xs):
        raise ValueError(
            f"names= gives {len(problem.input_names)} name(s) for {len(xs)} input(s); give one name per input"
        )
    _validate(problem.outputs, problem.inputs)
    return problem


def _tensors(value: Any, what: str) -> tuple[torch.Tensor, ...]:
    items = (value,) if isinstance(value, torch.Tensor) else value
    if not isinstance(items, tuple | list) or not items or not all(isinstance(t, torch.Tensor) for t in items):
        raise TypeError(
            f"{what} must be a tensor or a non-empty list/tuple of tensors, got {_describe(value)}; "
            "e.g. tracer.jacobian(y, x) or tracer.jacobian(f, (x, w))"
        )
    return tuple(items)


def _describe(value: Any) -> str:
    if isinstance(value, tuple | list):
        return f"a {type(value).__name__} of {[type(v).__name__ for v in value][:5]}"
    return type(value).__name__


def _input_names(names: Sequence[str] | None, func: Callable[..., Any], count: int) -> tuple[str, ...]:
    if names is not None:
        return tuple(names)
    try:
        params = [
            p.name
            for p in inspect.signature(func).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        params = []
    if len(params) >= count:
        return tuple(params[:count])
    return tuple("input" if count == 1 else f"input{i}" for i in range(count))


def _book_names(book: NameBook, tensors: tuple[torch.Tensor, ...], default: str) -> tuple[str, ...]:
    names = []
    for i, t in enumerate(tensors):
        name = book.get(t)
        names.append(name if name is not None else (default if len(tensors) == 1 else f"{default}{i}"))
    return tuple(names)


def _validate(ys: tuple[torch.Tensor, ...], xs: tuple[torch.Tensor, ...]) -> None:
    for i, x in enumerate(xs):
        if not x.requires_grad:
            raise ValueError(
                f"input {i} does not require grad, so no gradient can reach it; create it with "
                "requires_grad=True before computing the outputs, or pass the function itself: "
                "tracer.jacobian(f, inputs)"
            )
    for i, y in enumerate(ys):
        if not y.is_floating_point():
            raise TypeError(f"output {i} is a {y.dtype} tensor; a Jacobian needs floating-point outputs")
        if not y.requires_grad:
            raise ValueError(
                f"output {i} does not require grad: it was computed without any input that requires grad, "
                "or under torch.no_grad(); compute it from the inputs with gradients enabled"
            )


def _common_dtype(ys: tuple[torch.Tensor, ...], xs: tuple[torch.Tensor, ...]) -> torch.dtype:
    dtype = xs[0].dtype
    for t in (*xs, *ys):
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def _one_hot_rows(ys: tuple[torch.Tensor, ...]) -> list[tuple[torch.Tensor, ...]]:
    """Row r's seeds: one tensor per output, all zero except a 1 at flat element r of the concatenation."""
    rows = []
    for i, y in enumerate(ys):
        for k in range(y.numel()):
            # contiguous zeros (zeros_like would copy a transposed output's strides, and view(-1) needs flat)
            seeds = [torch.zeros(other.shape, dtype=other.dtype, device=other.device) for other in ys]
            seeds[i].view(-1)[k] = 1
            rows.append(tuple(seeds))
    return rows


def _row(grads: Sequence[torch.Tensor | None], xs: tuple[torch.Tensor, ...], dtype: torch.dtype) -> torch.Tensor:
    parts = [
        (g if g is not None else torch.zeros_like(x)).reshape(-1).to(dtype) for g, x in zip(grads, xs, strict=True)
    ]
    return torch.cat(parts)


def _by_loop(
    ys: tuple[torch.Tensor, ...],
    xs: tuple[torch.Tensor, ...],
    dtype: torch.dtype,
    keep: bool,
    labels: dict[str, torch.Tensor],
    capture: Capture,
    max_values: int,
    jacobian_limit: int,
    recorded: bool,
) -> tuple[torch.Tensor, tuple[Trace, ...]]:
    seeds = _one_hot_rows(ys)
    rows = []
    traces: list[Trace] = []
    for r, seed in enumerate(seeds):
        last = r == len(seeds) - 1
        if recorded:
            with record(names=labels, capture=capture, max_values=max_values, jacobian_limit=jacobian_limit) as rec:
                grads = torch.autograd.grad(ys, xs, seed, retain_graph=keep or not last, allow_unused=True)
            traces.extend(rec.traces)
        else:
            grads = torch.autograd.grad(ys, xs, seed, retain_graph=keep or not last, allow_unused=True)
        rows.append(_row(grads, xs, dtype))
    return torch.stack(rows), tuple(traces)


def _by_vmap(
    ys: tuple[torch.Tensor, ...], xs: tuple[torch.Tensor, ...], dtype: torch.dtype
) -> tuple[torch.Tensor | None, str | None, list[str]]:
    """All rows in one batched pass; (None, why, notes) when vmap cannot batch this graph."""
    n = sum(y.numel() for y in ys)
    eye = torch.eye(n, dtype=dtype, device=ys[0].device)
    batched, start = [], 0
    for y in ys:
        batched.append(eye[:, start : start + y.numel()].reshape(n, *y.shape).to(y.dtype))
        start += y.numel()
    # paused(): the batched pass is ours (the rows are recorded, if asked, by the loop's passes), not the user's
    with warnings.catch_warnings(record=True) as caught, paused():
        warnings.simplefilter("always")
        try:
            grads = torch.autograd.grad(
                ys, xs, tuple(batched), retain_graph=True, allow_unused=True, is_grads_batched=True
            )
        except Exception as exc:
            return None, f"vmap could not batch this graph ({type(exc).__name__}: {_first_line(exc)})", []
    notes = [f"torch warned during the vmapped pass: {_first_line(w.message)}" for w in caught]
    parts = [
        (g if g is not None else torch.zeros(n, *x.shape, dtype=dtype, device=x.device)).reshape(n, -1).to(dtype)
        for g, x in zip(grads, xs, strict=True)
    ]
    return torch.cat(parts, 1), None, notes


def _first_line(exc: object) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _max_abs(t: torch.Tensor) -> float:
    return float(t.abs().max()) if t.numel() else 0.0


def _reference_check(
    func: Callable[..., Any],
    given: tuple[torch.Tensor, ...],
    matrix: torch.Tensor,
    ys: tuple[torch.Tensor, ...],
    single_output: bool,
) -> JacobianCheck:
    """Compare with torch.autograd.functional.jacobian on fresh copies of the inputs."""
    fresh = tuple(x.detach().clone() for x in given)
    with paused():  # torch's reference passes are not the user's: keep them out of any open record() block
        reference = torch.autograd.functional.jacobian(func, fresh)  # type: ignore[no-untyped-call]
    # Inputs went in as a tuple, so each output gives a tuple over inputs; block (i, j) is out_i.shape + in_j.shape.
    per_output = [reference] if single_output else list(reference)
    expected = torch.cat(
        [
            torch.cat([b.reshape(y.numel(), -1).to(matrix.dtype) for b in blocks], 1)
            for y, blocks in zip(ys, per_output, strict=True)
        ],
        0,
    )
    both_nan = torch.isnan(matrix) & torch.isnan(expected)
    diff = (matrix.double() - expected.double()).abs().masked_fill(both_nan, 0.0)
    error = float(diff.max()) if diff.numel() else 0.0  # NaN on one side only stays NaN: not ok
    tolerance = 64 * torch.finfo(matrix.dtype).eps * max(1.0, _max_abs(expected.double().nan_to_num()))
    return JacobianCheck(ok=error <= tolerance, max_error=error, tolerance=tolerance)
