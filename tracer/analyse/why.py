"""`why`: from what was recorded (the forward record, the backward passes, the target's facts) to one answer —
the cause of a None, zero or broken gradient, with the user's line."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..model.errors import GradtraceError
from ..model.forward_events import ForwardOp, ForwardRecord
from ..model.records import Trace
from ..model.why_records import Cause, TargetFacts, WhyAnswer
from .forward_flow import flow_from
from .why_errors import explain_error, is_known
from .why_missing import frozen, missing, non_leaf
from .why_text import at_line, output_name, target_step
from .why_zero import leaf_of, zero_or_reached


def answer(
    facts: TargetFacts | None,
    record: ForwardRecord,
    traces: Sequence[Trace],
    *,
    names: Mapping[int, str] | None = None,
) -> WhyAnswer:
    """The answer for `facts` (a tensor), or, with facts=None, for the backward error the record ends with."""
    names = names or {}
    failed = _failed(record)
    if facts is None:
        if failed is None:
            raise GradtraceError(
                "there is no backward error to explain: every backward call in the recorded code succeeded. "
                "Ask about a tensor instead: tracer.why(w, rec) (gradtrace why SCRIPT.py --leaf NAME)"
            )
        return _error(record, failed, traces, names)
    if facts.grad == "none" and failed is not None and is_known(failed.raised or ""):
        return _error(record, failed, traces, names)
    if facts.grad != "none":
        return _arrived(facts, record, traces, names)
    if facts.is_leaf and not facts.requires_grad:
        return frozen(facts, record)
    if not facts.is_leaf and not facts.retains_grad:
        return non_leaf(facts, record)
    backward = _last_backward(record)
    if backward is None and failed is not None:  # every pass raised: that error is why
        return _error(record, failed, traces, names)
    if backward is None:
        text = (
            f"{facts.name}.grad is None because no backward pass ran in the recorded code: call loss.backward() "
            "(or torch.autograd.backward) inside the record() block"
        )
        return at_line(facts.name, Cause.NOT_RUN, text, None, None, path=(target_step(facts.name, "no pass"),))
    found = missing(facts, record, backward, names)
    if found is not None:
        return found
    return _reset(facts, record, traces, names, backward)


def _failed(record: ForwardRecord) -> ForwardOp | None:
    return next((op for op in reversed(record.backward_calls) if op.raised is not None), None)


def _last_backward(record: ForwardRecord) -> ForwardOp | None:
    return next((op for op in reversed(record.backward_calls) if op.raised is None), None)


def _error(record: ForwardRecord, failed: ForwardOp, traces: Sequence[Trace], names: Mapping[int, str]) -> WhyAnswer:
    found = explain_error(record, failed, traces, names)
    if found is not None:
        return found
    raise GradtraceError(
        f"backward at {failed.where} raised {failed.raised!r}, which gradtrace's why does not explain (it explains "
        "in-place changes, a second backward through a freed graph, and outputs without a grad_fn)"
    )


def _arrived(facts: TargetFacts, record: ForwardRecord, traces: Sequence[Trace], names: Mapping[int, str]) -> WhyAnswer:
    trace = next((t for t in reversed(traces) if leaf_of(t, facts) is not None), None)
    backward = _last_backward(record)
    output = "the output" if backward is None else output_name(backward, names)
    uses = [] if facts.serial is None else flow_from(record, facts.serial, carries_grad=True).uses
    found = None if trace is None else zero_or_reached(facts, trace, backward, output, uses)
    if found is not None:
        return found
    what = "all zeros" if facts.grad == "zero" else "a gradient"
    text = (
        f"{facts.name}.grad holds {what}, but no recorded backward pass delivered it (it was there before the "
        "recorded code ran, or was set by hand)"
    )
    return at_line(facts.name, Cause.ZERO if facts.grad == "zero" else Cause.REACHED, text, None, None)


def _reset(
    facts: TargetFacts, record: ForwardRecord, traces: Sequence[Trace], names: Mapping[int, str], backward: ForwardOp
) -> WhyAnswer:
    """On the path, yet .grad is None: the pass gave it one and something reset .grad afterwards."""
    text = (
        f"{facts.name} is on the gradient path from {output_name(backward, names)} and the backward call at "
        f"{backward.where} reached it, but {facts.name}.grad is None now: something reset it after the pass "
        "(optimizer.zero_grad() sets .grad to None), or the pass was torch.autograd.grad / used inputs= without it"
    )
    trace = next((t for t in reversed(traces) if leaf_of(t, facts) is not None), None)
    leaf = None if trace is None else leaf_of(trace, facts)
    if leaf is not None and leaf.reason:
        text += f"; the recorded pass says: {leaf.reason}"
    return at_line(
        facts.name, Cause.REACHED, text, backward.file, backward.line, path=(target_step(facts.name, "reset"),)
    )
