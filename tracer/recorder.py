"""The only module that touches autograd hooks: it records backward passes into Trace objects.

How: while a `record()` block is open, torch's Python-side engine object is wrapped, so every pass —
`Tensor.backward`, `torch.autograd.backward`, `torch.autograd.grad`, however they were imported — goes
through `_run_recorded`. That walks the graph from the outputs, puts a pre-hook and a post-hook on every
node, runs torch's own engine unchanged, removes every hook (also when the pass raises) and turns what the
hooks saw into a plain, frozen `Trace`.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
import sys
import threading
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch.autograd.variable import Variable

from .errors import GradtraceError, add_explanation
from .local_jacobian import LocalResult, NestedPassRefused, calling_node, local_jacobian
from .model import CAPTURES, Capture, Edge, Leaf, Options, Seed, Step, TensorInfo, Trace
from .names import NameBook, frame_source, user_frame
from .tensors import TensorTable, dtype_name

ACCUMULATE = "AccumulateGrad"


class GradtraceWarning(UserWarning):
    """Something gradtrace could not record; the backward pass itself was not affected."""


# --------------------------------------------------------------------------- public entry points


class Recorder:
    """Records every backward pass started in this thread while the block is open, into `.traces`."""

    def __init__(
        self,
        *,
        names: Any = None,
        capture: Capture = "auto",
        max_values: int = 64,
        jacobian_limit: int = 64,
        label: str | None = None,
    ) -> None:
        self.options = _checked_options(capture, max_values, jacobian_limit)
        self.names = names
        self.label = label
        self.traces: list[Trace] = []
        self._started = 0
        self._thread: int | None = None

    def __enter__(self) -> Recorder:
        if self._thread is not None:
            raise GradtraceError("this record() block is already open; open a new tracer.record() instead")
        self._thread = threading.get_ident()
        _open(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        _close(self)
        self._thread = None

    def __len__(self) -> int:
        return len(self.traces)

    def __iter__(self) -> Any:
        return iter(self.traces)

    def __getitem__(self, index: int) -> Trace:
        return self.traces[index]

    def __repr__(self) -> str:
        return f"<tracer.record: {len(self.traces)} pass{'es' if len(self.traces) != 1 else ''}>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        from .notebook import mimebundle

        return mimebundle(self, include=include, exclude=exclude)

    def _next_index(self) -> int:
        self._started += 1
        return self._started

    def _deliver(self, index: int, trace: Trace) -> None:
        trace = dataclasses.replace(trace, index=index, label=self.label or trace.label)
        positions = [t.index for t in self.traces]
        self.traces.insert(bisect.bisect(positions, index), trace)


def record(
    *,
    names: Any = None,
    capture: Capture = "auto",
    max_values: int = 64,
    jacobian_limit: int = 64,
    label: str | None = None,
) -> Recorder:
    """A context manager recording every backward pass inside it: `with tracer.record() as rec: ...`."""
    return Recorder(names=names, capture=capture, max_values=max_values, jacobian_limit=jacobian_limit, label=label)


def trace(
    outputs: torch.Tensor | Sequence[torch.Tensor],
    gradient: torch.Tensor | Sequence[torch.Tensor | None] | None = None,
    *,
    inputs: torch.Tensor | Sequence[torch.Tensor] | None = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    names: Any = None,
    capture: Capture = "auto",
    max_values: int = 64,
    jacobian_limit: int = 64,
    label: str | None = None,
) -> Trace:
    """Run `torch.autograd.backward(outputs, gradient, ...)` and return its recorded Trace.

    Same `.grad` results and same errors as torch; a known error gets a plain-words explanation added as a
    note, and a pass that fails midway keeps what it recorded on the exception as `partial_trace`.
    """
    rec = Recorder(names=names, capture=capture, max_values=max_values, jacobian_limit=jacobian_limit, label=label)
    with rec:
        try:
            torch.autograd.backward(
                outputs, gradient, retain_graph=retain_graph, create_graph=create_graph, inputs=inputs
            )
        except BaseException as exc:  # also KeyboardInterrupt: the pass so far is kept on it, not lost
            add_explanation(exc, _as_tuple(outputs), _as_tuple(gradient))
            if rec.traces:
                exc.partial_trace = rec.traces[0]  # type: ignore[attr-defined]
            raise
    if not rec.traces:  # pragma: no cover - torch ran no pass without raising
        raise GradtraceError("torch.autograd.backward returned without running a backward pass")
    return rec.traces[0]


def _as_tuple(x: Any) -> tuple[Any, ...]:
    if x is None:
        return ()
    if isinstance(x, torch.Tensor):
        return (x,)
    return tuple(x)


def _checked_options(capture: Any, max_values: Any, jacobian_limit: Any) -> Options:
    if capture not in CAPTURES:
        raise ValueError(f"unknown capture: {capture!r} (must be one of {list(CAPTURES)})")
    for name, value in (("max_values", max_values), ("jacobian_limit", jacobian_limit)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a whole number >= 0, got {value!r} (0 turns it off)")
    return Options(capture=capture, max_values=max_values, jacobian_limit=jacobian_limit)


# --------------------------------------------------------------------------- engine interception

_lock = threading.Lock()
_open_recorders: list[Recorder] = []
_engine: Any = None  # torch's engine while ours is installed


class _RecordingEngine:
    """Stands in for torch's engine object: records run_backward, passes everything else through."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def run_backward(self, *args: Any, **kwargs: Any) -> Any:
        return _run_recorded(self._engine, args, kwargs)


def _open(rec: Recorder) -> None:
    global _engine
    with _lock:
        if not _open_recorders:
            _engine = Variable._execution_engine
            Variable._execution_engine = _RecordingEngine(_engine)  # type: ignore[assignment]
        _open_recorders.append(rec)


def _close(rec: Recorder) -> None:
    global _engine
    with _lock:
        if rec in _open_recorders:
            _open_recorders.remove(rec)
        if not _open_recorders and _engine is not None:
            if isinstance(Variable._execution_engine, _RecordingEngine):
                Variable._execution_engine = _engine
            else:  # someone else replaced the engine after us: leave theirs, it wraps ours
                warnings.warn("torch's autograd engine was replaced while recording", GradtraceWarning, stacklevel=3)
            _engine = None


_paused = threading.local()


@contextmanager
def paused() -> Iterator[None]:
    """Passes started in this thread inside the block are not recorded (gradtrace's own reference passes)."""
    before = getattr(_paused, "on", False)
    _paused.on = True
    try:
        yield
    finally:
        _paused.on = before


def active_recorders() -> list[Recorder]:
    """The record() blocks open in this thread, outermost first."""
    me = threading.get_ident()
    with _lock:
        return [r for r in _open_recorders if r._thread == me]


@dataclasses.dataclass
class _Call:
    """One run_backward call, parsed."""

    outputs: tuple[Any, ...]
    grads: tuple[Any, ...]
    keep_graph: bool
    create_graph: bool
    inputs: tuple[Any, ...]
    accumulate_grad: bool

    @classmethod
    def parse(cls, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Call:
        names = ("tensors", "grad_tensors", "keep_graph", "create_graph", "inputs", "allow_unreachable")
        bound = dict(zip(names, args, strict=False))
        bound.update(kwargs)
        return cls(
            outputs=tuple(bound.get("tensors") or bound.get("t_outputs") or ()),
            grads=tuple(bound.get("grad_tensors") or ()),
            keep_graph=bool(bound.get("keep_graph", False)),
            create_graph=bool(bound.get("create_graph", False)),
            inputs=tuple(bound.get("inputs") or ()),
            accumulate_grad=bool(bound.get("accumulate_grad", True)),
        )


def _is_batched(t: Any) -> bool:
    try:
        if not isinstance(t, torch.Tensor):
            return False
        # torch.autograd.grad(is_grads_batched=True) batches with the legacy vmap (torch._vmap_internals)
        functorch = torch._C._functorch
        return bool(functorch.is_batchedtensor(t) or functorch.is_legacy_batchedtensor(t))
    except Exception:  # pragma: no cover - functorch internals moved
        return False


def _run_recorded(engine: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if getattr(calling_node, "active", False):
        raise NestedPassRefused("a backward pass started while gradtrace was computing a node's Jacobian")
    recorders = active_recorders()
    call = _Call.parse(args, kwargs)
    if not recorders or getattr(_paused, "on", False) or any(_is_batched(g) for g in call.grads):
        # vmapped passes (is_grads_batched) carry batched tensors the hooks cannot summarise: run them as is.
        return engine.run_backward(*args, **kwargs)
    innermost = recorders[-1]
    indices = [r._next_index() for r in recorders]
    frame = user_frame(sys._getframe(1))
    pas = _PassRecorder(call, innermost.options, NameBook(innermost.names, frame), frame_source(frame))
    running = _running_passes()
    parent = running[-1] if running else None  # a pass started from inside a node of this one
    try:
        pas.install()
        running.append(pas)
        try:
            result = engine.run_backward(*args, **kwargs)
        finally:
            running.pop()
    except BaseException as exc:
        pas.remove()
        _finish_and_deliver(pas, recorders, indices, None, exc)
        raise
    pas.remove()
    _finish_and_deliver(pas, recorders, indices, result, None)
    if parent is not None:
        parent.nested_reached |= pas.reached
    return result


_running = threading.local()


def _running_passes() -> list[_PassRecorder]:
    """The recorded passes this thread is inside, innermost last."""
    stack: list[_PassRecorder] | None = getattr(_running, "stack", None)
    if stack is None:
        stack = _running.stack = []
    return stack


def _graph_task_id() -> int:
    """The id of the backward pass the engine is running in this thread (-1 when torch cannot tell)."""
    get = getattr(torch._C, "_current_graph_task_id", None)
    return -1 if get is None else int(get())


def _finish_and_deliver(
    pas: _PassRecorder, recorders: list[Recorder], indices: list[int], result: Any, error: BaseException | None
) -> None:
    try:
        trace = pas.finish(result, error)
    except Exception as exc:  # our bug must never cost the user their backward pass
        warnings.warn(
            f"gradtrace could not record this pass: {type(exc).__name__}: {exc}", GradtraceWarning, stacklevel=4
        )
        return
    finally:
        pas.release()
    for rec, index in zip(recorders, indices, strict=True):
        rec._deliver(index, trace)


# --------------------------------------------------------------------------- one pass


def _gradient_edge(t: Any) -> tuple[Any, int] | None:
    """(node, output_nr) where a gradient for `t` enters the graph: its grad_fn, or a leaf's AccumulateGrad."""
    if hasattr(t, "node") and hasattr(t, "output_nr") and not isinstance(t, torch.Tensor):
        return t.node, int(t.output_nr)  # a GradientEdge
    if not isinstance(t, torch.Tensor) or not t.requires_grad:
        return None
    if t.grad_fn is not None:
        return t.grad_fn, t.output_nr
    get_edge = getattr(torch.autograd.graph, "get_gradient_edge", None)
    if get_edge is not None:
        edge = get_edge(t)
        return edge.node, int(edge.output_nr)
    with torch.enable_grad():  # torch < 2.2: reach the AccumulateGrad node through a view
        return t.view_as(t).grad_fn.next_functions[0][0], 0  # type: ignore[union-attr]  # pragma: no cover


def _short_name(node: Any) -> str:
    return str(node.name()).rsplit("::", 1)[-1]


_BACKWARD_SUFFIX = re.compile(r"Backward\d*$")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


NESTED_REASON = (
    "not on this pass's graph, but it got its gradient in a nested backward pass that a node of this pass "
    "started (a reentrant torch.utils.checkpoint does this): see the pass recorded after this one"
)
COMPILED_OP = "torch.compile: a compiled region, its whole backward in one node"
COMPILED_NOTE = (
    "torch.compile runs the backward of this compiled region as one function: the steps inside it are not "
    "visible and its Jacobian is not computed; run the model without torch.compile to see them"
)


def _is_compiled(node: Any) -> bool:
    """A torch.compile'd region: AOTAutograd puts its whole backward into one CompiledFunction node."""
    forward_cls = getattr(node, "_forward_cls", None)
    return (
        forward_cls is not None
        and forward_cls.__name__ == "CompiledFunction"
        and forward_cls.__module__.startswith("torch._functorch")
    )


def describe_op(name: str, node: Any) -> str:
    """The forward operation a backward node came from, in plain words."""
    if _is_compiled(node):
        return COMPILED_OP
    forward_cls = getattr(node, "_forward_cls", None)
    if forward_cls is not None:
        return f"{forward_cls.__name__}.apply"
    if name == ACCUMULATE:
        return "leaf: accumulate into .grad"
    if name == "CopySlices":
        return "in-place write into a slice (y[i] = ...)"
    base = _BACKWARD_SUFFIX.sub("", name)
    return _CAMEL.sub("_", base).lower() if base != name else name


def _anomaly_source(node: Any) -> str | None:
    """The forward line from anomaly mode's traceback, when the user turned it on for the forward."""
    try:
        stack = node.metadata.get("traceback_")
    except Exception:
        return None
    if not stack:
        return None
    for entry in reversed(stack):
        match = re.search(r'File "([^"]+)", line (\d+)', entry)
        if match and "/torch/" not in match.group(1).replace("\\", "/"):
            return f"{match.group(1)}:{match.group(2)}"
    return None


class _NodeState:
    __slots__ = (
        "done",
        "edges",
        "exact_edges",
        "fan_in",
        "fn",
        "grad_before",
        "local",
        "name",
        "source",
        "started",
        "v",
        "variable",
        "vjp",
    )

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.name = _short_name(fn)
        self.edges: list[tuple[int | None, int]] = []
        self.fan_in: dict[int, int] = {}  # forward output -> how many gradients arrive there
        self.exact_edges: tuple[bool, ...] = ()
        self.variable: torch.Tensor | None = None
        self.source: str | None = None
        self.v: tuple[int | None, ...] = ()
        self.vjp: tuple[int | None, ...] = ()
        self.local: LocalResult | None = None
        self.grad_before: int | None = None
        self.started = False
        self.done = False


class _PassRecorder:
    """Hooks one pass, then turns what the hooks saw into a Trace."""

    def __init__(self, call: _Call, options: Options, names: NameBook, source: str | None) -> None:
        self.call = call
        self.options = options
        self.names = names
        self.source = source
        self.table = TensorTable(options.capture, options.max_values)
        self.exact = TensorTable("stats", options.max_values)  # seeds, leaves' .grad before/after, results
        self.states: list[_NodeState] = []
        self.index: dict[Any, int] = {}
        self.order: list[int] = []
        self.handles: list[Any] = []
        self.notes: list[str] = []
        self.roots: list[tuple[int, int] | None] = []
        self.seed_handles: list[int | None] = []
        self.retained: list[tuple[str, torch.Tensor, int, int, int | None]] = []  # name, t, node, out_nr, before
        self.input_nodes: list[tuple[torch.Tensor | Any, tuple[int, int] | None]] = []
        self.thread = threading.get_ident()
        self.task: int | None = None  # the engine's id of this pass, learnt when its first node runs
        self.reached: set[int] = set()  # id() of the leaves this pass accumulated into (kept after release)
        self.nested_reached: set[int] = set()  # ... and those that passes started inside it accumulated into

    # -- before the pass

    def install(self) -> None:
        self._walk()
        for g in self.call.grads:
            self.seed_handles.append(self.exact.add(g, copy=True) if isinstance(g, torch.Tensor) else None)
        for name, t in self.names.retained:
            edge = _gradient_edge(t)
            if edge is not None and edge[0] in self.index:
                before = self.exact.add(t.grad, copy=True)
                self.retained.append((name, t, self.index[edge[0]], edge[1], before))
        for t in self.call.inputs:
            edge = _gradient_edge(t)
            at = (self.index[edge[0]], edge[1]) if edge is not None and edge[0] in self.index else None
            self.input_nodes.append((t, at))
        try:
            for i, st in enumerate(self.states):
                pre, post = self._hooks(i, st)
                self.handles.append(st.fn.register_prehook(pre))
                self.handles.append(st.fn.register_hook(post))
        except BaseException:
            self.remove()
            raise

    def _walk(self) -> None:
        """Breadth-first from the outputs, in next_functions order: deterministic traversal ids."""
        queue: deque[Any] = deque()

        def visit(fn: Any) -> int:
            i = self.index.get(fn)
            if i is None:
                i = len(self.states)
                self.index[fn] = i
                st = _NodeState(fn)
                if st.name == ACCUMULATE:
                    st.variable = getattr(fn, "variable", None)
                self.states.append(st)
                queue.append(fn)
            return i

        for out in self.call.outputs:
            edge = _gradient_edge(out)
            if edge is None:
                self.roots.append(None)
                continue
            i = visit(edge[0])
            self.states[i].fan_in[edge[1]] = self.states[i].fan_in.get(edge[1], 0) + 1
            self.roots.append((i, edge[1]))
        anomaly = bool(self.states) and _anomaly_source(self.states[0].fn) is not None
        while queue:
            fn = queue.popleft()
            st = self.states[self.index[fn]]
            if anomaly:
                st.source = _anomaly_source(fn)
            exact_edges = []
            for next_fn, input_nr in fn.next_functions:
                if next_fn is None:
                    st.edges.append((None, input_nr))
                    exact_edges.append(False)
                    continue
                j = visit(next_fn)
                target = self.states[j]
                target.fan_in[input_nr] = target.fan_in.get(input_nr, 0) + 1
                st.edges.append((j, input_nr))
                exact_edges.append(target.name == ACCUMULATE)
            st.exact_edges = tuple(exact_edges)

    def _owns_this_run(self, i: int) -> bool:
        """Whether a node running now runs in this pass. A node can belong to several graphs at once (a leaf's
        AccumulateGrad, used by another thread's pass or by a pass a hook starts), and then it fires the hooks
        of every pass that hooked it."""
        task = _graph_task_id()
        if self.task is not None:
            return task == self.task
        # The first of our nodes to run: in our own thread while we are the innermost recorded pass there, or,
        # on an engine device thread, one of the outputs' nodes (every other node waits for those).
        stack = _running_passes()
        mine = (threading.get_ident() == self.thread and bool(stack) and stack[-1] is self) or any(
            root is not None and root[0] == i for root in self.roots
        )
        if mine:
            self.task = task
        return mine

    def _hooks(self, i: int, st: _NodeState) -> tuple[Any, Any]:
        def pre(grad_outputs: tuple[torch.Tensor | None, ...]) -> None:
            if not self._owns_this_run(i):
                return
            self.order.append(i)
            st.started = True
            if st.variable is not None:
                try:
                    st.grad_before = self.exact.add(st.variable.grad, copy=True)
                except Exception as exc:  # recording must never break the pass
                    self._note(st, exc)

        def post(grad_inputs: tuple[torch.Tensor | None, ...], grad_outputs: tuple[torch.Tensor | None, ...]) -> None:
            if self.task is None or _graph_task_id() != self.task:
                return
            try:
                self._after(st, grad_inputs, grad_outputs)
            except Exception as exc:
                self._note(st, exc)
            st.done = True

        return pre, post

    def _note(self, st: _NodeState, exc: Exception) -> None:
        self.notes.append(f"{st.name}: could not record ({type(exc).__name__}: {exc})")

    def _after(
        self,
        st: _NodeState,
        grad_inputs: tuple[torch.Tensor | None, ...],
        grad_outputs: tuple[torch.Tensor | None, ...],
    ) -> None:
        table = self.table
        leaf = st.variable is not None
        # A slot fed by several edges holds their sum, a new tensor: never reuse an edge's record for it.
        st.v = tuple(table.add(g, exact=leaf, copy=st.fan_in.get(k, 0) > 1) for k, g in enumerate(grad_outputs))
        exact_edges = st.exact_edges
        st.vjp = tuple(table.add(g, exact=k < len(exact_edges) and exact_edges[k]) for k, g in enumerate(grad_inputs))
        if self.options.jacobian_limit and not leaf:
            st.local = local_jacobian(st.fn, grad_outputs, grad_inputs, self.options.jacobian_limit)

    def remove(self) -> None:
        """Take every hook off again; safe to call twice."""
        handles, self.handles = self.handles, []
        for h in handles:
            h.remove()

    def release(self) -> None:
        """Drop every reference to the graph and its tensors, so they are freed as without tracing."""
        self.states = []
        self.index = {}
        self.call = _Call((), (), False, False, (), True)
        self.names = NameBook()
        self.retained = []
        self.input_nodes = []

    # -- after the pass

    def finish(self, result: Any, error: BaseException | None) -> Trace:
        self.reached = {id(st.variable) for st in self.states if st.variable is not None and st.started}
        ids = self._assign_ids()
        infos = self.table.finish()
        totals = {
            i: self.exact.add(st.variable.grad, copy=True)
            for i, st in enumerate(self.states)
            if st.variable is not None
        }
        retained_totals = [self.exact.add(t.grad, copy=True) for _, t, _, _, _ in self.retained]
        results = tuple(result) if isinstance(result, tuple | list) else ()
        result_handles = [self.exact.add(r, copy=True) if isinstance(r, torch.Tensor) else None for r in results]
        exact = self.exact.finish()

        def info(h: int | None) -> TensorInfo | None:
            return None if h is None else infos[h]

        def exact_info(h: int | None) -> TensorInfo | None:
            return None if h is None else exact[h]

        leaf_names = self._leaf_names(ids)
        steps = []
        for i in sorted(range(len(self.states)), key=lambda k: ids[k]):
            st = self.states[i]
            note = None
            if st.started and not st.done and error is not None:
                note = f"raised {type(error).__name__}: {_first_line(error)}"
            elif _is_compiled(st.fn):
                note = COMPILED_NOTE
            elif st.local is not None and st.local.note:
                note = st.local.note
            steps.append(
                Step(
                    id=ids[i],
                    name=st.name,
                    op=describe_op(st.name, st.fn),
                    executed=st.started,
                    v=tuple(info(h) for h in st.v),
                    vjp=tuple(info(h) for h in st.vjp),
                    edges=tuple(Edge(None if t is None else ids[t], nr) for t, nr in st.edges),
                    jacobian=st.local.jacobian if st.local else None,
                    check=st.local.check if st.local else None,
                    source=st.source,
                    leaf=leaf_names.get(i),
                    note=note,
                )
            )
        leaves = self._leaves(
            ids, leaf_names, info, exact_info, totals, retained_totals, results, result_handles, error
        )
        seeds = self._seeds(ids, exact_info)
        inputs = None
        if self.call.inputs:
            inputs = tuple(self._input_name(t, k) for k, (t, _) in enumerate(self.input_nodes))
        return Trace(
            kind="backward" if self.call.accumulate_grad else "grad",
            seeds=seeds,
            nodes=tuple(steps),
            leaves=leaves,
            options=dataclasses.replace(
                self.options,
                retain_graph=self.call.keep_graph,
                create_graph=self.call.create_graph,
                inputs=inputs,
            ),
            source=self.source,
            complete=error is None,
            error=None if error is None else f"{type(error).__name__}: {_first_line(error)}",
            notes=tuple(self.notes),
            torch_version=torch.__version__,
            rank=_distributed_rank(),
        )

    def _assign_ids(self) -> dict[int, int]:
        """Executed nodes get 1..k in execution order; the rest follow in traversal order."""
        ids: dict[int, int] = {}
        for i in self.order:
            if i not in ids:
                ids[i] = len(ids) + 1
        for i in range(len(self.states)):
            if i not in ids:
                ids[i] = len(ids) + 1
        return ids

    def _leaf_names(self, ids: dict[int, int]) -> dict[int, str]:
        names: dict[int, str] = {}
        used: set[str] = set()
        unnamed = 0
        for i in sorted(range(len(self.states)), key=lambda k: ids[k]):
            st = self.states[i]
            if st.variable is None:
                continue
            name = self.names.get(st.variable)
            if name is None or name in used:
                while f"leaf{unnamed}" in used or self._taken(f"leaf{unnamed}"):
                    unnamed += 1
                name = f"leaf{unnamed}"
                unnamed += 1
            used.add(name)
            names[i] = name
        return names

    def _taken(self, name: str) -> bool:
        return name in self.names.explicit

    def _input_name(self, t: Any, k: int) -> str:
        name = self.names.get(t) if isinstance(t, torch.Tensor) else None
        return name or f"input{k}"

    def _leaves(
        self,
        ids: dict[int, int],
        leaf_names: dict[int, str],
        info: Any,
        exact_info: Any,
        totals: dict[int, int | None],
        retained_totals: list[int | None],
        results: tuple[Any, ...],
        result_handles: list[int | None],
        error: BaseException | None,
    ) -> dict[str, Leaf]:
        leaves: dict[str, Leaf] = {}
        input_at = {at: k for k, (_, at) in enumerate(self.input_nodes) if at is not None}
        returned = not self.call.accumulate_grad
        for i, name in sorted(leaf_names.items(), key=lambda kv: ids[kv[0]]):
            st = self.states[i]
            var = st.variable
            assert var is not None
            k = input_at.get((i, 0))
            if returned and k is not None and k < len(result_handles):
                grad, kind = exact_info(result_handles[k]), "input"
            else:
                grad, kind = (info(st.v[0]) if st.started and st.v else None), "leaf"
            leaves[name] = Leaf(
                name=name,
                kind=kind,  # type: ignore[arg-type]
                shape=tuple(var.shape),
                dtype=dtype_name(var.dtype),
                node=ids[i],
                grad=grad,
                grad_before=exact_info(st.grad_before) if st.started else exact_info(totals.get(i)),
                grad_total=exact_info(totals.get(i)),
                reason=None if grad is not None else self._why_no_gradient(st, i, input_at, error),
            )
        for (name, t, node, out_nr, before), total in zip(self.retained, retained_totals, strict=True):
            st = self.states[node]
            grad = info(st.v[out_nr]) if st.started and out_nr < len(st.v) else None
            leaves.setdefault(
                name,
                Leaf(
                    name=name,
                    kind="retained",
                    shape=tuple(t.shape),
                    dtype=dtype_name(t.dtype),
                    node=ids[node],
                    grad=grad,
                    grad_before=exact_info(before),
                    grad_total=exact_info(total),
                    reason=None if grad is not None else "no gradient reached its node",
                    input_nr=out_nr,
                ),
            )
        for k, (t, at) in enumerate(self.input_nodes):
            name = self._input_name(t, k)
            if name in leaves or not isinstance(t, torch.Tensor):
                continue
            grad = exact_info(result_handles[k]) if returned and k < len(result_handles) else None
            if grad is None and at is not None:
                st = self.states[at[0]]
                grad = info(st.v[at[1]]) if st.started and at[1] < len(st.v) else None
            leaves[name] = Leaf(
                name=name,
                kind="input",
                shape=tuple(t.shape),
                dtype=dtype_name(t.dtype),
                node=None if at is None else ids[at[0]],
                grad=grad,
                reason=None if grad is not None else "not on any path from the outputs",
                input_nr=0 if at is None else at[1],
            )
        reached = {id(st.variable) for st in self.states if st.variable is not None}
        for name, t in self.names.explicit.items():
            if id(t) not in reached and name not in leaves and t.requires_grad:
                leaves[name] = Leaf(
                    name=name,
                    kind="leaf",
                    shape=tuple(t.shape),
                    dtype=dtype_name(t.dtype),
                    node=None,
                    reason=NESTED_REASON
                    if id(t) in self.nested_reached
                    else "not on any path from the outputs (not used to compute them, or only through "
                    "detach() / torch.no_grad())",
                )
        return leaves

    def _why_no_gradient(self, st: _NodeState, i: int, input_at: dict[Any, int], error: BaseException | None) -> str:
        if error is not None and not st.started:
            return "the pass stopped before reaching it"
        if self.call.inputs and (i, 0) not in input_at:
            return "not among the pass's inputs=, so the engine did not accumulate into it"
        if not self.call.accumulate_grad:
            return "torch.autograd.grad returns gradients instead of accumulating into .grad"
        return "no gradient reached it"

    def _seeds(self, ids: dict[int, int], exact_info: Any) -> tuple[Seed, ...]:
        seeds = []
        implicit = _implicit_seeds(len(self.call.outputs))
        for k, out in enumerate(self.call.outputs):
            root = self.roots[k] if k < len(self.roots) else None
            tensor = out if isinstance(out, torch.Tensor) else None
            handle = self.seed_handles[k] if k < len(self.seed_handles) else None
            v = exact_info(handle)
            shape = tuple(tensor.shape) if tensor is not None else (v.shape if v is not None else ())
            dtype = dtype_name(tensor.dtype) if tensor is not None else (v.dtype if v is not None else "")
            seeds.append(
                Seed(
                    index=k,
                    name=self.names.get(tensor) if tensor is not None else None,
                    shape=shape,
                    dtype=dtype,
                    v=v,
                    target=None if root is None else ids[root[0]],
                    input_nr=0 if root is None else root[1],
                    implicit=None if implicit is None or k >= len(implicit) else implicit[k],
                )
            )
        return tuple(seeds)


def _implicit_seeds(count: int) -> list[bool] | None:
    """Which seeds torch made itself (gradient=None), read from torch.autograd.backward/grad's own frame."""
    arguments = {torch.autograd.backward.__code__: "grad_tensors", torch.autograd.grad.__code__: "grad_outputs"}
    frame: Any = sys._getframe(1)
    while frame is not None:
        name = arguments.get(frame.f_code)
        if name is not None:
            given = frame.f_locals.get(name)
            if given is None:
                return [True] * count
            if isinstance(given, torch.Tensor):
                return [False] * count
            return [g is None for g in given]
        frame = frame.f_back
    return None  # called some other way: unknown


def _distributed_rank() -> int | None:
    """This process's rank when torch.distributed is initialised (DDP, torchrun), else None."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return int(dist.get_rank())
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
