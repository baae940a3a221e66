"""`tracer.why(target, recording)`: runs or reads a forward record, gathers the target's facts and the names in
the caller's scope, and hands them to the analysis (tracer/analyse/why.py); the answer comes back displayable."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..analyse.why import answer
from ..model.errors import GradtraceError
from ..model.forward_events import ForwardRecord
from ..model.why_records import WhyAnswer
from ..record.recorder import Recorder, record
from ..record.script_runner import Outcome, run_script
from ..record.why_facts import is_module, is_tensor, look_up, name_in, scope_names, target_facts
from .why_view import WhyView


def why(target: Any = None, recording: Recorder | Callable[[], Any] | None = None) -> WhyView:
    """Why `target`'s gradient is None, zero or broken, or why backward raised — the cause and the source line.

    `recording` is what saw the code run: a `tracer.record(forward=True)` block (`tracer.why(w, rec)`), or a
    function taking no arguments, which why runs inside one (`tracer.why(model.fc.weight, train_step)`; an error
    it raises is explained, not raised). `target` is the tensor or parameter asked about, or its variable's name;
    leave it out (`tracer.why(rec)`) to explain the backward error the recorded code ended with.
    """
    if recording is None and (isinstance(target, Recorder) or _is_function(target)):
        target, recording = None, target
    caller = sys._getframe(1)
    scope: dict[str, Any] = {**caller.f_globals, **caller.f_locals}
    if recording is None:
        return WhyView(_without_record(target, scope))
    if isinstance(recording, Recorder):
        rec = recording
    elif _is_function(recording):
        rec = record(forward=True)
        with rec, contextlib.suppress(Exception):  # the error is what why explains; the record holds it
            recording()
        scope = {**getattr(recording, "__globals__", {}), **scope}
    else:
        raise GradtraceError(
            f"why's recording must be a tracer.record(forward=True) block or a function to run, got "
            f"{type(recording).__name__}: with tracer.record(forward=True) as rec: ...; then tracer.why(w, rec)"
        )
    return WhyView(explain_recording(rec, target, scope, where="the caller's scope"))


def _is_function(value: Any) -> bool:
    return callable(value) and not is_tensor(value) and not is_module(value) and not isinstance(value, str | Recorder)


def explain_recording(rec: Recorder, target: Any, scope: Mapping[str, Any], *, where: str) -> WhyAnswer:
    """The answer for `target` (a tensor, a name in `scope`, or None for the error) from a closed forward record."""
    forward = rec.forward
    if forward is None:
        raise GradtraceError(
            "this record() block did not record the forward, which why needs to see where a path was cut: open it "
            "with tracer.record(forward=True), or pass why a function to run: tracer.why(w, train_step)"
        )
    if rec._thread is not None:
        raise GradtraceError("the record() block is still open: call tracer.why(...) after the `with` block ends")
    names = scope_names(scope, forward)
    if target is None:
        return answer(None, forward.record, rec.traces, names=names)
    tensor, name = _target(target, scope, where)
    return answer(target_facts(tensor, name, forward), forward.record, rec.traces, names=names)


def _target(target: Any, scope: Mapping[str, Any], where: str) -> tuple[Any, str]:
    if isinstance(target, str):
        return look_up(scope, target, where), target
    if not is_tensor(target):
        kind = type(target).__name__
        raise GradtraceError(
            f"why explains a tensor's gradient, and got {'an' if kind[:1].lower() in 'aeiou' else 'a'} {kind} "
            f"({str(target)[:60]!r}): pass the "
            "tensor or parameter itself (tracer.why(model.fc.weight, rec)) or its variable's name"
        )
    return target, name_in(scope, target) or "the tensor"


def _without_record(target: Any, scope: Mapping[str, Any]) -> WhyAnswer:
    """No forward seen: only what the tensor itself tells (frozen, a non-leaf); anything else needs a record."""
    if target is None:
        raise GradtraceError(
            "why needs to see the code run to explain an error: tracer.why(train_step) with a function, or "
            "tracer.why(rec) after `with tracer.record(forward=True) as rec: ...`"
        )
    tensor, name = _target(target, scope, "the caller's scope")
    facts = target_facts(tensor, name, None)
    if (facts.is_leaf and not facts.requires_grad) or (not facts.is_leaf and not facts.retains_grad):
        return answer(facts, ForwardRecord(), [])
    raise GradtraceError(
        f"to say why {name}'s gradient is {'None' if facts.grad == 'none' else facts.grad}, why needs to see the "
        f"forward and backward run: `with tracer.record(forward=True) as rec: ...` around them, then "
        f"tracer.why({name}, rec) (or tracer.why({name}, train_step) with a function that runs them)"
    )


def why_in_script(
    path: Path, args: Sequence[str] = (), *, leaf: str | None = None, hidden: Sequence[str] = ()
) -> tuple[WhyAnswer, Outcome]:
    """Run a script as `python SCRIPT.py ARGS` would, inside tracer.record(forward=True), and answer for the
    tensor its global `leaf` names (dotted: `model.fc.weight`), or, without one, for the error it ended with."""
    rec = record(forward=True, label=path.name)
    with rec:
        outcome = run_script(path, list(args), hidden=hidden)
    where = f"{path.name}'s globals"
    if leaf is None and not any(op.raised for op in (rec.forward.record.backward_calls if rec.forward else [])):
        ended = "" if outcome.error is None else f" (it ended with {type(outcome.error).__name__}: {outcome.error})"
        raise GradtraceError(
            f"{path.name} ran without a backward error{ended}: give --leaf NAME to ask why a tensor's gradient is "
            "None or zero (NAME as the script spells it: w, model.fc.weight)"
        )
    return explain_recording(rec, leaf, outcome.namespace, where=where), outcome
