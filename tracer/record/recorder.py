"""Record backward passes: tracer.trace(), tracer.record(), and the engine interception behind both.

How: while a `record()` block is open, torch's Python-side engine object is wrapped, so every pass —
`Tensor.backward`, `torch.autograd.backward`, `torch.autograd.grad`, however they were imported — goes
through `_run_recorded`. A PassRecorder (pass_recorder.py; its hooks in pass_hooks.py) hooks the pass's
graph, torch's own engine runs it unchanged, every hook comes off again (also when the pass raises) and what
the hooks saw (a PassSeen) becomes a plain, frozen `Trace` (trace_builder.py) — built when `rec.traces` is
first read, so a training loop recording every step pays for the hooks, not for the Python objects.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import gc
import inspect
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch.autograd.variable import Variable

from ..model.errors import GradtraceError
from ..model.records import CAPTURES, JACOBIAN_LIMIT, MAX_VALUES, Capture, Options, Trace
from ..model.seam import upstairs
from .backward_call import BackwardCall
from .explain import add_explanation
from .local_jacobian import NestedPassRefused, calling_node
from .modules import ModuleTagger
from .names import NameBook, frame_source, module_variable, user_frame
from .pass_recorder import PassRecorder, running_passes
from .pass_seen import PassSeen
from .trace_builder import build_trace


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
        max_values: int = MAX_VALUES,
        jacobian_limit: int = JACOBIAN_LIMIT,
        label: str | None = None,
        model: torch.nn.Module | None = None,
    ) -> None:
        self.options = _checked_options(capture, max_values, jacobian_limit)
        self.names = names if names is not None else model
        self.label = label
        self._tagger = None if model is None else ModuleTagger(model, root=module_variable(model) or "")
        self._recorded: list[tuple[int, str | None, _Pending]] = []  # (pass number, label, trace to be)
        self._traces: list[Trace] = []
        self._built = 0  # how many of _recorded are in _traces
        self._started = 0
        self._thread: int | None = None
        self._not_harvested: list[str] = []  # why passes ended without a record (our failure, not the pass's)

    def __enter__(self) -> Recorder:
        if self._thread is not None:
            raise GradtraceError("this record() block is already open; open a new tracer.record() instead")
        self._thread = threading.get_ident()
        if self._tagger is not None:
            self._tagger.__enter__()
        try:
            _open(self)
        except BaseException:  # leave nothing behind: the module hooks go again, the block can be reopened
            if self._tagger is not None:
                self._tagger.__exit__(None, None, None)
            self._thread = None
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        _close(self)
        if self._tagger is not None:
            self._tagger.__exit__(*exc_info)
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
        return upstairs().mimebundle(self, include=include, exclude=exclude)

    @property
    def traces(self) -> list[Trace]:
        """One Trace per recorded pass, in the order the passes started (built here on first reading)."""
        if self._built < len(self._recorded):
            with _collector_paused():
                traces = []
                for index, label, pending in self._recorded:
                    trace = pending.trace()
                    if trace is not None:
                        traces.append(dataclasses.replace(trace, index=index, label=label or trace.label))
            self._traces, self._built = traces, len(self._recorded)
        return self._traces

    @property
    def unrecorded(self) -> list[str]:
        """Why passes that ran inside the block have no trace (gradtrace could not read them), one line each."""
        _ = self.traces  # builds what is pending, which is where most such failures show
        return self._not_harvested + [p.error for _, _, p in self._recorded if p.error is not None]

    def _next_index(self) -> int:
        self._started += 1
        return self._started

    def _deliver(self, index: int, pending: _Pending) -> None:
        positions = [i for i, _, _ in self._recorded]
        # the label as it is now: a caller may relabel between passes (gradtrace run names them by cell)
        self._recorded.insert(bisect.bisect(positions, index), (index, self.label, pending))


def record(
    *,
    names: Any = None,
    capture: Capture = "auto",
    max_values: int = MAX_VALUES,
    jacobian_limit: int = JACOBIAN_LIMIT,
    label: str | None = None,
    model: torch.nn.Module | None = None,
) -> Recorder:
    """A context manager recording every backward pass inside it: `with tracer.record() as rec: ...`.

    With `model=`, forward calls inside the block also tag every backward node with the nn.Module path that
    created it (Step.module, Trace.modules), and leaves are named after the model's parameters.
    """
    return Recorder(
        names=names, capture=capture, max_values=max_values, jacobian_limit=jacobian_limit, label=label, model=model
    )


def trace(
    outputs: torch.Tensor | Sequence[torch.Tensor],
    gradient: torch.Tensor | Sequence[torch.Tensor | None] | None = None,
    *,
    inputs: torch.Tensor | Sequence[torch.Tensor] | None = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    names: Any = None,
    capture: Capture = "auto",
    max_values: int = MAX_VALUES,
    jacobian_limit: int = JACOBIAN_LIMIT,
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
    if not rec.traces and rec.unrecorded:  # the pass ran (.grad holds its gradients) but recording it failed
        raise GradtraceError(
            f"the backward pass ran and its gradients are in .grad as usual, but gradtrace could not record it "
            f"({rec.unrecorded[0]}); the tensors may be of a kind it cannot read (e.g. on the 'meta' device)"
        )
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


_ORIGINAL_ENTRY_POINTS: dict[str, Callable[..., Any]] = {
    "backward": torch.autograd.backward,
    "grad": torch.autograd.grad,
}
_ARGUMENTS = {"backward": ("tensors", "grad_tensors"), "grad": ("outputs", "grad_outputs")}


def _explaining(name: str) -> Any:
    """torch.autograd.backward / grad, adding gradtrace's explanation to a known error (Tensor.backward calls
    torch.autograd.backward, so this covers it). Errors about the seed arise before the engine runs."""
    original = _ORIGINAL_ENTRY_POINTS[name]
    outputs_name, grads_name = _ARGUMENTS[name]

    @functools.wraps(original)
    def entry_point(*args: Any, **kwargs: Any) -> Any:
        try:
            return original(*args, **kwargs)
        except Exception as exc:
            try:
                bound = inspect.signature(original).bind_partial(*args, **kwargs).arguments
            except TypeError:
                bound = {}
            add_explanation(exc, _as_tuple(bound.get(outputs_name)), _as_tuple(bound.get(grads_name)))
            raise

    return entry_point


def _torch_engine() -> Any:
    """torch's engine object, through which every backward pass runs (a private attribute since torch 1.0)."""
    engine = getattr(Variable, "_execution_engine", None)
    if engine is None or not callable(getattr(engine, "run_backward", None)):
        raise GradtraceError(
            f"this torch ({torch.__version__}) has no autograd engine object at "
            "torch.autograd.variable.Variable._execution_engine with a run_backward method, which gradtrace "
            "wraps to see every backward pass; nothing was recorded and nothing was changed. Every torch "
            "release from 1.0 to 2.13 has it: install one of those (gradtrace needs torch>=2.1, e.g. "
            "pip install 'torch>=2.1,<2.14'), and report this torch version to gradtrace"
        )
    return engine


def _open(rec: Recorder) -> None:
    global _engine
    with _lock:
        if not _open_recorders:
            _engine = _torch_engine()
            Variable._execution_engine = _RecordingEngine(_engine)  # type: ignore[assignment]
            for name in _ORIGINAL_ENTRY_POINTS:
                setattr(torch.autograd, name, _explaining(name))
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
            for name, original in _ORIGINAL_ENTRY_POINTS.items():
                if getattr(getattr(torch.autograd, name), "__wrapped__", None) is original:
                    setattr(torch.autograd, name, original)


def active_recorders() -> list[Recorder]:
    """The record() blocks open in this thread, outermost first."""
    me = threading.get_ident()
    with _lock:
        return [r for r in _open_recorders if r._thread == me]


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
    if not recorders or getattr(_paused, "on", False):
        return engine.run_backward(*args, **kwargs)
    call = BackwardCall.parse(args, kwargs)
    if any(_is_batched(g) for g in call.grads):
        # vmapped passes (is_grads_batched) carry batched tensors the hooks cannot summarise: run them as is.
        return engine.run_backward(*args, **kwargs)
    innermost = recorders[-1]
    indices = [r._next_index() for r in recorders]
    frame = user_frame(sys._getframe(1))
    tagger = next((r._tagger for r in reversed(recorders) if r._tagger is not None), None)
    pas = PassRecorder(
        call=call,
        options=innermost.options,
        names=NameBook(innermost.names, frame),
        source=frame_source(frame),
        modules=None if tagger is None else tagger.classes,
    )
    running = running_passes()
    parent = running[-1] if running else None  # a pass started from inside a node of this one
    with _collector_paused():
        return _run_and_record(engine, args, kwargs, pas, recorders, indices, running, parent)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a pass is recorded, the user's setting restored after.

    The hooks and the trace create thousands of small objects; with the collector on, those alive mid-pass
    get promoted and every few passes trigger a full collection of the whole process (torch holds ~190k
    objects: ~90 ms). Paused, the temporaries die by reference counting before any collection sees them.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _run_and_record(
    engine: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    pas: PassRecorder,
    recorders: list[Recorder],
    indices: list[int],
    running: list[PassRecorder],
    parent: PassRecorder | None,
) -> Any:
    try:
        pas.install()
        if parent is not None:
            parent.set_innermost(False)
        running.append(pas)
        pas.set_innermost(True)
        try:
            result = engine.run_backward(*args, **kwargs)
        finally:
            running.pop()
            pas.set_innermost(False)
            if parent is not None:
                parent.set_innermost(True)
    except BaseException as exc:
        pas.remove()
        _finish_and_deliver(pas, recorders, indices, None, exc)
        raise
    pas.remove()
    _finish_and_deliver(pas, recorders, indices, result, None)
    if parent is not None:
        parent.nested_reached |= pas.reached
    return result


def _finish_and_deliver(
    pas: PassRecorder, recorders: list[Recorder], indices: list[int], result: Any, error: BaseException | None
) -> None:
    try:
        pas.harvest(result, error)
    except Exception as exc:  # our bug must never cost the user their backward pass
        _could_not_record(exc)
        for rec in recorders:
            rec._not_harvested.append(f"{type(exc).__name__}: {exc}")
        return
    finally:
        pas.release()
    assert pas.seen is not None  # harvest() returned
    pending = _Pending(pas.seen)
    for rec, index in zip(recorders, indices, strict=True):
        rec._deliver(index, pending)


def _could_not_record(exc: Exception) -> None:
    warnings.warn(f"gradtrace could not record this pass: {type(exc).__name__}: {exc}", GradtraceWarning, stacklevel=5)


class _Pending:
    """A recorded pass whose Trace is built on first request, once, for every record() block it belongs to."""

    def __init__(self, seen: PassSeen) -> None:
        self._seen: PassSeen | None = seen
        self._trace: Trace | None = None
        self.error: str | None = None  # why the Trace could not be built
        self._lock = threading.Lock()

    def trace(self) -> Trace | None:
        with self._lock:
            if self._seen is not None:
                seen, self._seen = self._seen, None
                try:
                    self._trace = build_trace(seen)
                except Exception as exc:  # our bug: the pass ran fine, only its record is lost
                    _could_not_record(exc)
                    self.error = f"{type(exc).__name__}: {exc}"
            return self._trace
