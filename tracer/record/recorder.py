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
import inspect
import sys
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from torch.autograd.variable import Variable

from ..model.digest import PassDigest
from ..model.errors import GradtraceError
from ..model.pass_selection import PassSelection, parse_pass_selection
from ..model.records import CAPTURES, JACOBIAN_LIMIT, MAX_VALUES, Capture, Options, Trace
from ..model.seam import upstairs
from ..model.timeline_records import Timeline
from ..model.why_records import StubCause
from .backward_call import BackwardCall
from .collector_pause import collector_paused
from .digest_builder import Digester, PassFacts
from .explain import add_explanation
from .forward_record import ForwardRecorder
from .func_passes import in_transform, outside_transforms, recordable, transform_label
from .local_jacobian import NestedPassRefused, calling_node
from .module_hooks import EveryModuleTagger
from .modules import ModuleTagger
from .names import NameBook, frame_source, module_variable, user_frame
from .pass_recorder import PassRecorder, graph_task_id, running_passes
from .pass_seen import PassSeen
from .sample_reduction import SampleReducer
from .skipped_passes import SKIPPED, is_batched, skipped_text
from .stub_causes import stub_causes
from .tensorboard_export import TensorBoardExport, write_tensorboard
from .trace_builder import build_trace


class GradtraceWarning(UserWarning):
    """Something gradtrace could not record; the backward pass itself was not affected."""


# --------------------------------------------------------------------------- public entry points


class Recorder:
    """Records every backward pass started while the block is open, into `.traces`: in this thread, and in the
    threads this thread starts while it is open (unless they open a record() block of their own)."""

    def __init__(
        self,
        *,
        names: Any = None,
        capture: Capture = "auto",
        max_values: int = MAX_VALUES,
        jacobian_limit: int = JACOBIAN_LIMIT,
        label: str | None = None,
        model: torch.nn.Module | None = None,
        on_pass: Callable[[Trace], Any] | None = None,
        modules: bool = False,
        forward: bool = False,
        keep: str | PassSelection = "all",
    ) -> None:
        self.options = _checked_options(capture, max_values, jacobian_limit)
        self.keep = parse_pass_selection(keep)  # which passes keep their full Trace (every pass: a digest)
        self.on_pass = on_pass
        self.names = names if names is not None else model
        self.label = label
        if not isinstance(modules, bool):
            raise ValueError(f"modules must be True or False, got {modules!r}")
        self._tagger: ModuleTagger | EveryModuleTagger | None = None
        if model is not None:
            self._tagger = ModuleTagger(model, root=module_variable(model) or "")
        elif modules:  # every nn.Module's forward, through torch's global module hooks (module_hooks.py)
            self._tagger = EveryModuleTagger()
        if not isinstance(forward, bool):
            raise ValueError(f"forward must be True or False, got {forward!r}")
        # forward=True: the torch calls of the block are noted too (forward_record.py), for tracer.why
        self.forward: ForwardRecorder | None = ForwardRecorder() if forward else None
        self._recorded: list[tuple[int, str | None, _Pending]] = []  # (pass number, label, trace to be)
        self._traces: list[Trace] = []
        self._built = 0  # how many of _recorded are in _traces
        self._started = 0
        self._thread: int | None = None
        self._not_harvested: list[str] = []  # why passes ended without a record (our failure, not the pass's)
        self._skipped: dict[str, int] = {}  # passes run unrecorded on purpose: why -> how many
        self._lock = threading.Lock()  # passes of several threads deliver here
        self._digests: list[PassDigest] = []  # every pass's digest, in pass order
        self._digester = Digester()
        self._reducer = SampleReducer()
        self._latest: tuple[int, str | None, _Pending] | None = None  # keep="...last": the pass that may be last
        self._highest = 0  # the highest pass index delivered
        self._flag_kinds: set[str] = set()  # the health flags the block's passes carried so far (first-flagged)

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
        if self.forward is not None:
            self.forward.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.forward is not None:
            self.forward.__exit__(*exc_info)
        _close(self)
        if self._tagger is not None:
            self._tagger.__exit__(*exc_info)
        self._thread = None
        self._keep_last()

    def _keep_last(self) -> None:
        """The block is closed: the most recent pass is the last one, kept when keep= names 'last'."""
        with self._lock:
            latest, self._latest = self._latest, None
            if latest is not None:
                self._keep(*latest)
        if latest is not None and self.on_pass is not None:
            self._hand_on(*latest)

    def _keep(self, index: int, label: str | None, pending: _Pending) -> None:
        """Keep this pass's full trace (call with the lock held)."""
        _insert(self._recorded, (index, label, pending), lambda r: r[0])
        self._reducer.add(pending)  # a long block: older unread passes keep statistics, not samples
        at = bisect.bisect_left(self._digests, index, key=lambda d: d.index)
        if at < len(self._digests) and self._digests[at].index == index:
            self._digests[at] = dataclasses.replace(self._digests[at], kept=True)

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
        """One Trace per recorded pass that keep= keeps (every pass by default), in the order the passes started,
        each with its true index (built here on first reading); every pass's digest is in `.digests`."""
        if self._built < len(self._recorded):
            with collector_paused():
                traces = []
                for index, label, pending in self._recorded:
                    trace = pending.trace()
                    if trace is not None:
                        traces.append(dataclasses.replace(trace, index=index, label=_joined(label, trace.label)))
            self._traces, self._built = traces, len(self._recorded)
        return self._traces

    @property
    def digests(self) -> list[PassDigest]:
        """Every recorded pass's digest, in pass order — also the passes whose full Trace keep= did not keep: per
        leaf its gradient's norm, max |g|, zeros, NaN/Inf, its value's norm and its update since the previous
        pass, and the pass's health flags (tracer/model/digest.py). A few hundred bytes per pass."""
        with self._lock:
            return list(self._digests)

    def timeline(self, **thresholds: float) -> Timeline:
        """Gradient flow over time: every pass's norms per leaf and per module, from the digests, as a Timeline
        (`.svg()`, `.save("t.svg" | "t.csv" | "t.json")`, notebook display); `vanishing=`, `exploding=`,
        `diverging=` as tracer.timeline."""
        line: Timeline = upstairs().timeline(self.digests, **thresholds)
        return line

    def to_tensorboard(self, logdir: str | Path, *, histograms: bool = True) -> TensorBoardExport:
        """Write every pass's gradient norms as TensorBoard scalars (`grad_norm/<leaf>`, step = pass index) and
        histograms of the kept passes' gradient values into `logdir` (tensorboard_export.py: what a histogram
        is built from); needs the tensorboard package (gradtrace[tensorboard])."""
        return write_tensorboard(logdir, self.digests, self.traces, histograms=histograms)

    @property
    def unrecorded(self) -> list[str]:
        """Why passes that ran inside the block have no trace (gradtrace could not read them, or does not record
        such passes: torch.func's, other threads'), one line per pass."""
        _ = self.traces  # builds what is pending, which is where most such failures show
        skipped = [skipped_text(why) for why, count in self._skipped.items() for _ in range(count)]
        return skipped + self._not_harvested + [p.error for _, _, p in self._recorded if p.error is not None]

    def _next_index(self) -> int:
        with self._lock:
            self._started += 1
            return self._started

    def _deliver(self, index: int, pending: _Pending, facts: PassFacts | None = None) -> None:
        """A finished pass: its digest always; its full trace as keep= says (a pass that may be the last one is
        held until a later pass arrives, then let go unless chosen otherwise: memory stays bounded)."""
        with self._lock:
            # the label as it is now: a caller may relabel between passes (gradtrace run names them by cell)
            label = self.label
            flagged = new_flag = False
            if facts is not None:
                digest = self._digester.digest(facts, index=index, label=_joined(label, pending.label))
                flagged = bool(digest.flags)
                if flagged:
                    new_flag = not self._flag_kinds.issuperset(digest.flags)
                    self._flag_kinds.update(digest.flags)
                _insert(self._digests, digest, lambda d: d.index)
            kept = self.keep.selects(index, flagged=flagged, new_flag=new_flag)
            if kept:
                self._keep(index, label, pending)
            if self.keep.last and index > self._highest:
                self._highest = index
                # the pass held before is let go: it was not the last (unless kept for another reason)
                self._latest = None if kept else (index, label, pending)
        if kept and self.on_pass is not None:
            self._hand_on(index, label, pending)

    def _hand_on(self, index: int, label: str | None, pending: _Pending) -> None:
        """Give the finished pass to on_pass, built once (rec.traces shows the same Trace). This runs inside the
        user's backward call, in the thread that ran the pass: nothing of ours may raise into it."""
        try:
            with collector_paused():
                trace = pending.trace()  # None when it could not be built: rec.unrecorded says why
            if trace is not None and self.on_pass is not None:
                self.on_pass(dataclasses.replace(trace, index=index, label=_joined(label, trace.label)))
        except Exception as exc:
            _tell(f"gradtrace: on_pass raised {type(exc).__name__}: {exc}; the pass itself is recorded")

    def _skip(self, why: str) -> bool:
        """Count a pass that ran unrecorded on purpose; True the first time for this reason in this block."""
        with self._lock:
            count = self._skipped.get(why, 0)
            self._skipped[why] = count + 1
            return count == 0


def record(
    *,
    names: Any = None,
    capture: Capture = "auto",
    max_values: int = MAX_VALUES,
    jacobian_limit: int = JACOBIAN_LIMIT,
    label: str | None = None,
    model: torch.nn.Module | None = None,
    on_pass: Callable[[Trace], Any] | None = None,
    modules: bool = False,
    forward: bool = False,
    keep: str | PassSelection = "all",
) -> Recorder:
    """A context manager recording every backward pass inside it: `with tracer.record() as rec: ...`.

    With `model=`, forward calls inside the block also tag every backward node with the nn.Module path that
    created it (Step.module, Trace.modules), and leaves are named after the model's parameters. With
    `modules=True`, every nn.Module's forward inside the block tags its nodes, with no model named (torch's
    global module hooks; paths start at the variable holding the outermost module). `on_pass` is
    called with each pass's Trace as the pass ends (in the thread that ran it; what it raises is a warning, never
    an error in the user's backward call), e.g. to write it to disk at once. With `forward=True` the torch calls
    of the block are noted as well (ops, versions, lines; no tensors kept), which `tracer.why` reads.

    `keep` chooses which passes keep their full Trace in `.traces` (each with its true index), for long runs:
    "all" (the default), or a selection such as "first,last,flagged", "every:100,flagged" or "1,10,last"
    (tracer/model/pass_selection.py). Every pass gets a digest in `.digests` either way (per-leaf gradient and
    update norms, health flags). The last pass is known when the block closes; `on_pass` sees kept passes only.
    """
    return Recorder(
        names=names,
        capture=capture,
        max_values=max_values,
        jacobian_limit=jacobian_limit,
        label=label,
        model=model,
        on_pass=on_pass,
        modules=modules,
        forward=forward,
        keep=keep,
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
        why = (
            skipped_text("func")
            if rec._skipped.get("func")
            else f"{rec.unrecorded[-1]}; the tensors may be of a kind it cannot read (e.g. on the 'meta' device)"
        )
        raise GradtraceError(
            f"the backward pass ran and its gradients are in .grad as usual, but gradtrace could not record it: {why}"
        )
    if not rec.traces:  # pragma: no cover - torch ran no pass without raising
        raise GradtraceError("torch.autograd.backward returned without running a backward pass")
    return rec.traces[0]


def _insert(items: list[Any], item: Any, key: Callable[[Any], int]) -> None:
    """Insert keeping `items` sorted by key: an append for the usual pass that arrives after every other (a
    10,000-step loop must not pay for its length at every step), a bisection for one that ran in another thread."""
    if not items or key(items[-1]) <= key(item):
        items.append(item)
    else:
        items.insert(bisect.bisect(items, key(item), key=key), item)


def _joined(block: str | None, own: str | None) -> str | None:
    """A pass's label: the block's (e.g. 'cell 3'), then the pass's own (a torch.func pass names its transform)."""
    return " · ".join(part for part in (block, own) if part) or None


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


_ORIGINAL_THREAD_START = threading.Thread.start


@functools.wraps(_ORIGINAL_THREAD_START)
def _thread_start(self: threading.Thread) -> None:
    """threading.Thread.start while a block is open: the new thread belongs to the blocks of the thread that
    starts it (weakly: a thread pool outliving the block must not keep its traces alive)."""
    with _lock:
        blocks = _blocks_of(threading.current_thread())
    if blocks:
        self._gradtrace_blocks = tuple(weakref.ref(r) for r in blocks)  # type: ignore[attr-defined]
    _ORIGINAL_THREAD_START(self)


def _blocks_of(thread: threading.Thread) -> list[Recorder]:
    """The open blocks a pass in `thread` belongs to: its own, else those of the thread that started it."""
    me = thread.ident
    own = [r for r in _open_recorders if r._thread == me]
    if own:
        return own
    inherited = [ref() for ref in getattr(thread, "_gradtrace_blocks", ())]
    return [r for r in _open_recorders if r in inherited]


def _open(rec: Recorder) -> None:
    global _engine
    with _lock:
        if not _open_recorders:
            _engine = _torch_engine()
            Variable._execution_engine = _RecordingEngine(_engine)  # type: ignore[assignment]
            for name in _ORIGINAL_ENTRY_POINTS:
                setattr(torch.autograd, name, _explaining(name))
            threading.Thread.start = _thread_start  # type: ignore[method-assign]
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
            if threading.Thread.start is _thread_start:  # else someone wrapped it after us: theirs calls ours
                threading.Thread.start = _ORIGINAL_THREAD_START  # type: ignore[method-assign]


def active_recorders() -> list[Recorder]:
    """The record() blocks open in this thread, outermost first."""
    me = threading.get_ident()
    with _lock:
        return [r for r in _open_recorders if r._thread == me]


def _recorders_of_this_pass() -> tuple[list[Recorder], list[Recorder]]:
    """(the blocks that record a pass starting now in this thread, the blocks open elsewhere that do not).

    A block records the passes of its own thread, and of the threads that thread starts while the block is open
    (a worker, a data thread), and of theirs, unless they open a block of their own. A thread that was running
    before (or was started by someone else) is not the block's: the block counts its passes as unrecorded. Not
    adopted either: the engine's own device threads running a node of a pass started elsewhere.
    """
    with _lock:
        if not _open_recorders:
            return [], []
        thread = threading.current_thread()
        mine = _blocks_of(thread)
        if mine and mine[0]._thread != thread.ident and graph_task_id() >= 0 and not running_passes():
            mine = []
        return mine, [r for r in _open_recorders if r not in mine and r._thread != thread.ident]


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


def _run_unrecorded(
    engine: Any, args: tuple[Any, ...], kwargs: dict[str, Any], recorders: list[Recorder], why: str
) -> Any:
    """Run the pass as without gradtrace, then count it in each block (and warn once per block)."""
    try:
        return engine.run_backward(*args, **kwargs)
    finally:
        first = [rec._skip(why) for rec in recorders]
        # Batched passes are listed only: tracer.jacobian's vmapped pass is one (its rows are recorded as a loop
        # when it records), and a warning there would read as torch's own in its notes.
        if any(first) and why != "batched":
            which, reason = SKIPPED[why]
            _tell(
                f"gradtrace did not record a backward pass {which}: {reason}. Every such pass is listed in the "
                "record() block's .unrecorded"
            )


def _tell(message: str) -> None:
    """Warn the user, pointing at their line; never raise into their code (with warnings turned into errors,
    what is not recorded is still listed in rec.unrecorded)."""
    here: FrameType | None = sys._getframe(1)
    mine = user_frame(here)
    level, frame = 2, here  # stacklevel 2 is the caller of _tell
    while frame is not None and frame is not mine:
        level, frame = level + 1, frame.f_back
    with suppress(Exception):
        warnings.warn(message, GradtraceWarning, stacklevel=level if frame is not None else 2)


def _run_recorded(engine: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if getattr(calling_node, "active", False):
        raise NestedPassRefused("a backward pass started while gradtrace was computing a node's Jacobian")
    recorders, elsewhere = _recorders_of_this_pass()
    if getattr(_paused, "on", False):
        return engine.run_backward(*args, **kwargs)
    if not recorders:
        if elsewhere:  # a block open in another thread that this thread does not belong to
            return _run_unrecorded(engine, args, kwargs, elsewhere, "thread")
        return engine.run_backward(*args, **kwargs)
    call = BackwardCall.parse(args, kwargs)
    func_label = None
    if in_transform(call):
        if not recordable(call):
            # vmap's tensors are batches of samples (jvp's, dual numbers): the pass runs as is, and nothing of
            # gradtrace touches its tensors.
            return _run_unrecorded(engine, args, kwargs, recorders, "func")
        func_label = transform_label(sys._getframe(1))
    if any(is_batched(g) for g in call.grads):
        # vmapped passes (is_grads_batched) carry batched tensors the hooks cannot summarise: run them as is.
        return _run_unrecorded(engine, args, kwargs, recorders, "batched")
    innermost = recorders[-1]
    options = innermost.options
    if func_label is not None:
        # A torch.func.grad pass goes through the Python hooks, which read each wrapper's value a level down
        # (tensors.py, func_passes.unwrapped) and allocate nothing that outlives the pass; the native recorder
        # keeps process-wide pools and caches, where one wrapper made under the transform once broke every later
        # pass. No local Jacobians: re-running a node would run it on the transform's wrappers and saved
        # tensors; the trace's options say so (jacobian_limit 0).
        options = dataclasses.replace(options, jacobian_limit=0)
    indices = [r._next_index() for r in recorders]
    frame = user_frame(sys._getframe(1))
    tagger = next((r._tagger for r in reversed(recorders) if r._tagger is not None), None)
    pas = PassRecorder(
        call=call,
        options=options,
        names=NameBook(innermost.names, frame),
        source=frame_source(frame),
        modules=None if tagger is None else tagger.classes,
        in_transform=func_label is not None,
    )
    running = running_passes()
    parent = running[-1] if running else None  # a pass started from inside a node of this one
    outside: Callable[[], AbstractContextManager[Any]] = nullcontext if func_label is None else outside_transforms
    with collector_paused():
        return _run_and_record(engine, args, kwargs, pas, recorders, indices, running, parent, outside, func_label)


def _run_and_record(
    engine: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    pas: PassRecorder,
    recorders: list[Recorder],
    indices: list[int],
    running: list[PassRecorder],
    parent: PassRecorder | None,
    outside: Callable[[], AbstractContextManager[Any]] = nullcontext,
    label: str | None = None,
) -> Any:
    """`outside`: around gradtrace's own work when the pass runs in a torch.func transform (never around the
    engine); `label`: the pass's own label (the transform's name)."""
    try:
        with outside():
            pas.install()
    except Exception as exc:  # our failure to hook it must never cost the user their pass: run it unrecorded
        pas.remove()
        pas.release()
        _could_not_record(exc)
        for rec in recorders:
            rec._not_harvested.append(f"{type(exc).__name__}: {exc}")
        return engine.run_backward(*args, **kwargs)
    try:
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
        with outside():
            _finish_and_deliver(pas, recorders, indices, None, exc, label)
        raise
    pas.remove()
    with outside():
        _finish_and_deliver(pas, recorders, indices, result, None, label)
    if parent is not None:
        parent.nested_reached |= pas.reached
    return result


def _finish_and_deliver(
    pas: PassRecorder,
    recorders: list[Recorder],
    indices: list[int],
    result: Any,
    error: BaseException | None,
    label: str | None = None,
) -> None:
    stubs: tuple[StubCause, ...] = ()
    try:
        pas.harvest(result, error)
        stubs = _stub_causes(pas, recorders)
    except Exception as exc:  # our bug must never cost the user their backward pass
        _could_not_record(exc)
        for rec in recorders:
            rec._not_harvested.append(f"{type(exc).__name__}: {exc}")
        return
    finally:
        pas.release()
    assert pas.seen is not None  # harvest() returned
    pending = _Pending(pas.seen, label, stubs)
    for rec, index in zip(recorders, indices, strict=True):
        rec._deliver(index, pending, pas.facts)


def _stub_causes(pas: PassRecorder, recorders: list[Recorder]) -> tuple[StubCause, ...]:
    """With record(forward=True): why each "no grad" stub has no gradient (read while the graph's nodes are held)."""
    forward = next((rec.forward for rec in recorders if rec.forward is not None), None)
    if forward is None or pas.seen is None:
        return ()
    try:
        return stub_causes(pas.graph.fns, pas.graph.edges, pas.seen.ids, forward)
    except Exception:  # our failure to read the causes costs the stubs their words, never the pass its record
        return ()


def _could_not_record(exc: Exception) -> None:
    _tell(f"gradtrace could not record this pass: {type(exc).__name__}: {exc}")


class _Pending:
    """A recorded pass whose Trace is built on first request, once, for every record() block it belongs to."""

    def __init__(self, seen: PassSeen, label: str | None = None, stubs: tuple[StubCause, ...] = ()) -> None:
        self._seen: PassSeen | None = seen
        self.label = label  # the pass's own label (a torch.func pass: its transform)
        self.stubs = stubs  # why its "no grad" stubs have none (record(forward=True) only)
        self._trace: Trace | None = None
        self.error: str | None = None  # why the Trace could not be built
        self._lock = threading.Lock()

    @property
    def lock(self) -> threading.Lock:
        """Held while the trace is built (or its samples reduced: sample_reduction.py)."""
        return self._lock

    @property
    def table(self) -> Any:
        """The pass's tensor table while its trace is not built yet, else None."""
        return None if self._seen is None else self._seen.table

    def trace(self) -> Trace | None:
        with self._lock:
            if self._seen is not None:
                seen, self._seen = self._seen, None
                try:
                    self._trace = build_trace(seen)
                    if self.label is not None:
                        self._trace = dataclasses.replace(self._trace, label=self.label)
                    if self.stubs:
                        self._trace = dataclasses.replace(self._trace, stubs=self.stubs)
                except Exception as exc:  # our bug: the pass ran fine, only its record is lost
                    _could_not_record(exc)
                    self.error = f"{type(exc).__name__}: {exc}"
            return self._trace
