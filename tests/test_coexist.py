"""Other hooks and PyTorch features next to gradtrace: each gives the same gradients and the same hook calls as
without tracing, nothing crashes, and the trace says what happened."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from torch.utils.checkpoint import checkpoint

import tracer
from tests.checks import assert_steps_consistent
from tests.fuzzing import TALLY

pytestmark = pytest.mark.usefixtures("engine_restored")

Run = Callable[[bool], tuple[dict[str, Any], list[tracer.Trace]]]


def _bits(t: torch.Tensor | None) -> bytes | None:
    return None if t is None else t.detach().contiguous().view(-1).view(torch.uint8).numpy().tobytes()


def _grads(module: torch.nn.Module, *tensors: tuple[str, torch.Tensor]) -> dict[str, Any]:
    out = {n: _bits(p.grad) for n, p in module.named_parameters()}
    out.update({n: _bits(t.grad) for n, t in tensors})
    return out


def same_with_and_without(run: Run) -> list[tracer.Trace]:
    """run(traced) returns what the user can observe (gradients, hook logs) and the traces; they must agree."""
    plain, none = run(False)
    assert none == []
    observed, traces = run(True)
    assert observed == plain, "tracing changed what the user observes"
    assert traces, "nothing was recorded"
    assert all(t.notes == () for t in traces), [t.notes for t in traces]
    for t in traces:
        assert tracer.load(t.to_json()).to_json() == t.to_json()  # every trace survives its JSON
    TALLY["features coexisting (same gradients and hook calls as untraced)"] += 1
    return traces


@contextmanager
def recording(traced: bool, **options: Any) -> Iterator[list[tracer.Trace]]:
    """Record the block's passes when `traced` (the list is filled when the block ends), else just run it."""
    traces: list[tracer.Trace] = []
    if not traced:
        yield traces
        return
    with tracer.record(**options) as rec:
        yield traces
    traces.extend(rec.traces)


def _mlp(seed: int = 0, dropout: float = 0.0) -> tuple[torch.nn.Sequential, torch.Tensor]:
    torch.manual_seed(seed)
    layers = [torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Dropout(dropout), torch.nn.Linear(6, 3)]
    model = torch.nn.Sequential(*layers)
    return model, torch.randn(5, 4, requires_grad=True)


# --------------------------------------------------------------------------- user hooks


def test_user_hooks_of_every_kind() -> None:
    def run(traced: bool) -> tuple[dict[str, Any], list[tracer.Trace]]:
        model, x = _mlp()
        log: list[Any] = []
        first, last = model[0], model[3]
        last.register_full_backward_pre_hook(lambda m, go: (go[0] * 2,))  # doubles what reaches the layer
        first.register_full_backward_hook(lambda m, gi, go: log.append(("module", _bits(go[0]))))
        first.weight.register_post_accumulate_grad_hook(lambda p: log.append(("post_acc", _bits(p.grad))))

        def sgd_in_backward(p: torch.Tensor) -> None:  # an optimizer step inside backward, then .grad dropped
            with torch.no_grad():
                p.sub_(0.1 * p.grad)
            p.grad = None

        last.bias.register_post_accumulate_grad_hook(sgd_in_backward)
        h = model[1](first(x))
        h.register_hook(lambda g: g.clamp(-0.01, 0.01))  # a tensor hook that changes the gradient
        h.retain_grad()
        y = last(model[2](h)).pow(2).sum()
        y.grad_fn.register_prehook(lambda go: log.append(("node", _bits(go[0]))))
        with recording(traced, names={"model": model}) as traces:
            y.backward()
        observed = _grads(model, ("x", x), ("h", h))
        observed["log"] = log
        observed["bias"] = _bits(last.bias)
        return observed, traces

    (trace,) = same_with_and_without(run)
    bias = trace.leaves["model.3.bias"]
    assert bias.grad is not None and bias.grad_total is None  # recorded, then dropped by the user's hook
    assert trace.leaves["h"].kind == "retained"
    hooks = [s for s in trace.steps if s.name == "BackwardHookFunctionBackward"]
    assert len(hooks) >= 2 and all(s.op == "BackwardHookFunction.apply" for s in hooks)


# --------------------------------------------------------------------------- checkpoint


@pytest.mark.parametrize("reentrant", [True, False], ids=["reentrant", "non-reentrant"])
def test_checkpoint(reentrant: bool) -> None:
    def run(traced: bool) -> tuple[dict[str, Any], list[tracer.Trace]]:
        model, x = _mlp(dropout=0.3)  # dropout: the recomputed forward must draw the same mask
        torch.manual_seed(1)
        y = checkpoint(model, x, use_reentrant=reentrant).pow(2).sum()
        with recording(traced, names={"model": model}) as traces:
            y.backward()
        return _grads(model, ("x", x)), traces

    traces = same_with_and_without(run)
    if reentrant:  # the checkpoint's backward runs the region's backward as a pass of its own
        outer, inner = traces
        (node,) = [s for s in outer.steps if s.name == "CheckpointFunctionBackward"]
        assert node.op == "CheckpointFunction.apply" and node.note is not None and "torch-internal" in node.note
        assert inner.index == 2 and sum(s.name == "AccumulateGrad" for s in inner.steps) == 5  # 4 params, x
        assert all(inner.leaves[f"model.{n}"].grad is not None for n in ("0.weight", "0.bias", "3.weight"))
        # the outer pass does not claim the parameters got nothing: it points at the nested pass
        reason = outer.leaves["model.0.weight"].reason
        assert reason is not None and "nested backward pass" in reason and "checkpoint" in reason
    else:  # one pass; saved tensors are recomputed once and may not be unpacked again for a Jacobian
        (trace,) = traces
        assert sum(s.name == "AccumulateGrad" for s in trace.steps) == 5
        refused = [s for s in trace.steps if s.note and "CheckpointError" in s.note]
        assert refused and all(s.jacobian is None for s in refused)


# --------------------------------------------------------------------------- autocast, compile


def test_autocast_bfloat16_on_cpu() -> None:
    def run(traced: bool) -> tuple[dict[str, Any], list[tracer.Trace]]:
        model, x = _mlp()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = model(x).float().pow(2).sum()
        with recording(traced, names={"model": model}) as traces:
            y.backward()
        return _grads(model, ("x", x)), traces

    (trace,) = same_with_and_without(run)
    dtypes = {i.dtype for s in trace.steps for i in s.v if i is not None}
    assert {"bfloat16", "float32"} <= dtypes
    assert {s.name for s in trace.steps} >= {"ToCopyBackward0", "AddmmBackward0"}
    assert all(s.check.ok for s in trace.steps if s.check is not None)  # at bfloat16's precision
    assert trace.leaves["model.0.weight"].dtype == "float32"


def test_torch_compile_shows_one_labelled_node() -> None:
    """aot_eager builds the same CompiledFunctionBackward node as the default inductor backend, without a C++
    compiler and in seconds."""
    torch._dynamo.reset()

    def run(traced: bool) -> tuple[dict[str, Any], list[tracer.Trace]]:
        model, x = _mlp()
        compiled = torch.compile(model, backend="aot_eager")
        y = compiled(x).pow(2).sum()
        with recording(traced, names={"model": model}) as traces:
            y.backward()
        return _grads(model, ("x", x)), traces

    (trace,) = same_with_and_without(run)
    (node,) = [s for s in trace.steps if s.name == "CompiledFunctionBackward"]
    assert "torch.compile" in node.op
    assert node.note is not None and "without torch.compile to see them" in node.note
    assert sum(s.name == "AccumulateGrad" for s in trace.steps) == 5
    assert {e.target for e in node.edges} <= {trace.leaves[n].node for n in trace.leaves} | {None}


# --------------------------------------------------------------------------- custom autograd.Function


class TwoOut(torch.autograd.Function):
    """Two outputs, one of them unused later; materialize_grads off, so its gradient arrives as None."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x)
        return x * 2, x**2

    @staticmethod
    def backward(ctx: Any, g1: torch.Tensor | None, g2: torch.Tensor | None) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        out = torch.zeros_like(x)
        if g1 is not None:
            out = out + 2 * g1
        if g2 is not None:
            out = out + 2 * x * g2
        return out


class WithIndex(torch.autograd.Function):
    """A non-differentiable integer output next to a float one, and a non-tensor argument."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        idx = x.argmax().reshape(1)
        ctx.mark_non_differentiable(idx)
        ctx.scale = scale
        return x * scale, idx

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, g: torch.Tensor, _: torch.Tensor | None) -> tuple[torch.Tensor, None]:
        return g * ctx.scale, None


def test_custom_functions() -> None:
    def run(traced: bool) -> tuple[dict[str, Any], list[tracer.Trace]]:
        x = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
        a, _unused = TwoOut.apply(x)
        b, idx = WithIndex.apply(x, 3.0)
        y = (a * b).sum() + x[idx].sum()
        with recording(traced) as traces:
            y.backward()
        return {"x": _bits(x.grad)}, traces

    (trace,) = same_with_and_without(run)
    steps = {s.name: s for s in trace.steps}
    two = steps["TwoOutBackward"]
    assert two.op == "TwoOut.apply" and two.v[1] is None and two.check is not None and two.check.ok
    assert steps["WithIndexBackward"].check is not None and steps["WithIndexBackward"].check.ok
    assert assert_steps_consistent(trace, require_jacobian=False) >= 4


class WrongBackward(torch.autograd.Function):
    """A custom backward with a bug (forgets a factor): the trace's check must flag it."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return g * x**2  # should be 3x²


def test_a_wrong_custom_backward_is_flagged() -> None:
    """A backward that is wrong but linear in v agrees with its own one-hot J; the forward re-run catches it."""
    x = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
    trace = tracer.trace(WrongBackward.apply(x).sum())
    (wrong,) = [s for s in trace.steps if s.name == "WrongBackwardBackward"]
    assert wrong.check is not None and not wrong.check.ok


# --------------------------------------------------------------------------- odd tensors


def test_complex_tensors() -> None:
    def run(traced: bool) -> tuple[dict[str, Any], list[tracer.Trace]]:
        z = torch.tensor([1 + 2j, 3 - 1j], requires_grad=True)
        w = torch.tensor([0.5, -2.0], requires_grad=True)
        y = (z * z.conj() * w).real.sum() + (z * (2 + 1j)).abs().sum()
        with recording(traced) as traces:
            y.backward(retain_graph=True)
            out = z * (2 + 1j)
            out.backward(torch.tensor([1 + 0j, 1j]))  # a complex seed
        return {"z": _bits(z.grad), "w": _bits(w.grad)}, traces

    first, second = same_with_and_without(run)
    grad = first.leaves["z"].grad
    assert grad is not None and grad.dtype == "complex64" and grad.values is None  # statistics of |z| only
    assert grad.stats is not None and grad.stats.norm > 0
    assert first.leaves["w"].grad is not None and first.leaves["w"].grad.values is not None
    refused = [s for s in first.steps if s.note == "no Jacobian: gradients are not real floating point"]
    assert refused and all(s.jacobian is None for s in refused)
    assert second.seeds[0].dtype == "complex64" and second.seeds[0].v is not None


def test_meta_tensors_run_but_are_not_recorded_and_say_so() -> None:
    """'meta' tensors have shapes but no data: the pass runs as untraced, the recorder says it could not read it."""
    x = torch.ones(3, device="meta", requires_grad=True)
    with (
        pytest.warns(tracer.GradtraceWarning, match="could not record this pass"),
        pytest.raises(tracer.GradtraceError, match=r"ran and its gradients are in .grad as usual.*'meta' device"),
    ):
        tracer.trace((x * 2).sum())
    assert x.grad is not None and x.grad.is_meta and x.grad.shape == (3,)
    with tracer.record() as rec:
        (x * 2).sum().backward()
    with pytest.warns(tracer.GradtraceWarning, match="Cannot copy out of meta tensor"):
        assert rec.traces == []  # traces are built when first read: that is where this one fails
    assert len(rec.unrecorded) == 1 and "meta" in rec.unrecorded[0]


def test_zero_size_tensors() -> None:
    def run(traced: bool) -> tuple[dict[str, Any], list[tracer.Trace]]:
        x = torch.zeros(0, 3, requires_grad=True)
        w = torch.ones(3, 2, requires_grad=True)
        y = (x @ w).sum() + w.sum()
        with recording(traced) as traces:
            y.backward()
        return {"x": _bits(x.grad), "w": _bits(w.grad)}, traces

    (trace,) = same_with_and_without(run)
    empty = trace.leaves["x"].grad
    assert empty is not None and empty.shape == (0, 3) and empty.stats is None and empty.values == ()
    assert trace.leaves["w"].grad is not None and trace.leaves["w"].grad.values == (1.0,) * 6


def test_integer_tensors() -> None:
    def run(traced: bool) -> tuple[dict[str, Any], list[tracer.Trace]]:
        x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
        counts = torch.tensor([3, 4, 5])  # an integer operand: type promotion to float
        index = torch.tensor([2, 0, 2])  # integer indices, with a repeat
        y = x * counts + x.index_select(0, index)
        with recording(traced) as traces:
            y.backward(torch.ones(3, dtype=torch.long))  # an integer seed: torch casts it
        return {"x": _bits(x.grad)}, traces

    (trace,) = same_with_and_without(run)
    assert trace.seeds[0].v is not None and trace.seeds[0].v.dtype == "int64"
    assert trace.leaves["x"].grad is not None and trace.leaves["x"].grad.values == (4.0, 4.0, 7.0)  # 3+1, 4, 5+2
    assert assert_steps_consistent(trace, require_jacobian=False) >= 2
    with pytest.raises(RuntimeError, match="floating point"):
        torch.tensor([1, 2]).requires_grad_()  # torch's own refusal, before gradtrace is involved


@pytest.mark.parametrize("how", ["constant", "no_grad", "detach"])
def test_an_output_that_does_not_require_grad(how: str) -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    if how == "constant":
        y = torch.ones(2).sum()
    elif how == "no_grad":
        with torch.no_grad():
            y = (x * 2).sum()
    else:
        y = (x * 2).detach().sum()
    with pytest.raises(RuntimeError) as plain:
        y.backward()
    with pytest.raises(RuntimeError) as traced:
        tracer.trace(y)
    assert str(traced.value) == str(plain.value) and "does not require grad" in str(traced.value)
    (note,) = traced.value.__notes__
    assert note.startswith("gradtrace:") and "requires_grad=True" in note
    TALLY["features coexisting (same gradients and hook calls as untraced)"] += 1
