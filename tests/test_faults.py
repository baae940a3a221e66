"""Faults during a recorded pass: the same error and the same .grad as without tracing, no hook left behind, the
engine restored, and the partial trace kept and marked incomplete rather than lost."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import torch

import tracer
from tests.fuzzing import TALLY
from tests.models import Boom
from tracer.record import tensors

pytestmark = pytest.mark.usefixtures("engine_restored")


def _fault() -> None:
    TALLY["faults injected (same error, same .grad, trace kept as incomplete)"] += 1


def _bits(t: torch.Tensor | None) -> bytes | None:
    return None if t is None else t.detach().contiguous().numpy().tobytes()


# --------------------------------------------------------------------------- backward raising inside


def test_wrong_seed_shape(hook_calls: list[str]) -> None:
    def run(traced: bool) -> tuple[BaseException, bytes | None]:
        x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
        y = x * 2
        with pytest.raises(RuntimeError, match="Mismatch in shape") as info:
            if traced:
                tracer.trace(y, torch.ones(2), retain_graph=True)
            else:
                y.backward(torch.ones(2), retain_graph=True)
        y.backward(torch.ones(3))  # the graph is untouched and still usable
        return info.value, _bits(x.grad)

    plain_error, plain_grad = run(traced=False)
    error, grad = run(traced=True)
    assert str(error) == str(plain_error) and grad == plain_grad
    assert any("must have exactly the output's shape" in n for n in error.__notes__)
    # torch checks the seed's shape before its engine starts: there is no pass, so no partial trace either
    assert not hasattr(error, "partial_trace")
    assert hook_calls == []
    _fault()


def test_custom_function_raising_midway(hook_calls: list[str]) -> None:
    def run(traced: bool) -> tuple[BaseException, dict[str, bytes | None], Any]:
        a = torch.tensor([1.0, 2.0], requires_grad=True)
        b = torch.tensor([3.0, 4.0], requires_grad=True)
        c = torch.tensor([5.0, 6.0], requires_grad=True)
        y = Boom.apply(a * b).sum() + (c * 5).sum()  # c's branch was made last, so it runs before Boom
        with pytest.raises(ValueError, match="boom in backward") as info:
            if traced:
                tracer.trace(y, names={"a": a, "b": b, "c": c}, retain_graph=True)
            else:
                y.backward(retain_graph=True)
        return info.value, {"a": _bits(a.grad), "b": _bits(b.grad), "c": _bits(c.grad)}, y

    plain_error, plain_grads, _ = run(traced=False)
    error, grads, y = run(traced=True)
    assert str(error) == str(plain_error) and grads == plain_grads
    assert grads["c"] is not None and grads["a"] is None  # the pass really stopped midway
    partial = error.partial_trace  # type: ignore[attr-defined]
    assert not partial.complete and partial.error == "ValueError: boom in backward"
    assert partial.leaves["c"].grad.values == (5.0, 5.0)  # recorded before the failure
    assert partial.leaves["a"].reason == "the pass stopped before reaching it"
    (failed,) = [s for s in partial.steps if s.note and s.note.startswith("raised")]
    assert failed.name == "BoomBackward" and failed.note == "raised ValueError: boom in backward"
    hook_calls.clear()
    with pytest.raises(ValueError):
        y.backward()  # the same graph again: it fails the same way, and none of our hooks fires
    assert hook_calls == []
    _fault()


def test_nan_caught_by_anomaly_mode(hook_calls: list[str]) -> None:
    def run(traced: bool) -> tuple[BaseException, bytes | None]:
        with torch.autograd.set_detect_anomaly(True):
            x = torch.tensor([0.0, 1.0], requires_grad=True)
            y = (x.sqrt() * torch.tensor([0.0, 1.0])).sum()  # sqrt'(0) = inf, times 0: NaN
            with pytest.raises(RuntimeError, match="returned nan values") as info:  # noqa: SIM117
                with pytest.warns(UserWarning, match="Error detected in SqrtBackward0"):
                    if traced:
                        tracer.trace(y)
                    else:
                        y.backward()
        return info.value, _bits(x.grad)

    plain_error, plain_grad = run(traced=False)
    error, grad = run(traced=True)
    assert str(error) == str(plain_error) and grad == plain_grad
    partial = error.partial_trace  # type: ignore[attr-defined]
    assert not partial.complete and "Function 'SqrtBackward0' returned nan values" in partial.error
    sqrt = next(s for s in partial.steps if s.name == "SqrtBackward0")
    assert sqrt.vjp[0].stats.nan == 1  # the trace shows where the NaN came from
    # the node anomaly mode names is the one marked as raising; the leaf after it never ran
    assert [s.name for s in partial.nodes if s.note and s.note.startswith("raised")] == ["SqrtBackward0"]
    assert [s.name for s in partial.steps] == ["SumBackward0", "MulBackward0", "SqrtBackward0"]
    assert sqrt.source is not None and sqrt.source.startswith(__file__)  # anomaly mode's forward line
    assert hook_calls.count("post") == len(partial.steps)  # SqrtBackward0 finished; then the check raised
    _fault()


# --------------------------------------------------------------------------- KeyboardInterrupt


def _interrupting_graph() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2

    def ctrl_c(g: torch.Tensor) -> None:
        raise KeyboardInterrupt

    h.register_hook(ctrl_c)
    return x, (h * 3).sum()


def test_keyboard_interrupt_in_a_user_hook_keeps_the_partial_trace(hook_calls: list[str]) -> None:
    x, y = _interrupting_graph()
    with pytest.raises(KeyboardInterrupt) as info:
        tracer.trace(y, retain_graph=True)
    partial = info.value.partial_trace  # type: ignore[attr-defined]
    assert not partial.complete and partial.error == "KeyboardInterrupt"
    assert [s.name for s in partial.steps][:2] == ["SumBackward0", "MulBackward0"]
    assert partial.leaves["x"].reason == "the pass stopped before reaching it"
    assert x.grad is None
    hook_calls.clear()
    with pytest.raises(KeyboardInterrupt):
        y.backward()
    assert hook_calls == []
    _fault()


def test_keyboard_interrupt_in_a_record_block() -> None:
    x, y = _interrupting_graph()
    with pytest.raises(KeyboardInterrupt), tracer.record() as rec:
        (x * 4).sum().backward()
        y.backward()
    assert [t.complete for t in rec.traces] == [True, False]
    assert rec.traces[1].error == "KeyboardInterrupt"
    assert x.grad is not None and x.grad.tolist() == [4.0, 4.0]
    _fault()


def test_keyboard_interrupt_inside_gradtraces_own_hook(monkeypatch: pytest.MonkeyPatch, hook_calls: list[str]) -> None:
    """Ctrl-C arriving while gradtrace records a node: it is not swallowed, and nothing is left behind."""
    original = tensors.TensorTable.add_default  # only the hooks call it: the interrupt lands in one
    calls = {"n": 0}

    def interrupted(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(tensors.TensorTable, "add_default", interrupted)
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = (x.sin() * 3).sum()
    with pytest.raises(KeyboardInterrupt) as info:
        tracer.trace(y, retain_graph=True)
    assert not info.value.partial_trace.complete  # type: ignore[attr-defined]
    monkeypatch.setattr(tensors.TensorTable, "add_default", original)
    hook_calls.clear()
    x.grad = None
    y.backward()
    assert hook_calls == []
    assert x.grad is not None and torch.equal(x.grad, 3 * torch.tensor([1.0, 2.0]).cos())
    _fault()


# --------------------------------------------------------------------------- nesting


def test_inner_block_failing_leaves_the_outer_recording() -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    with tracer.record() as outer:
        (x * 2).sum().backward()
        with pytest.raises(ValueError), tracer.record() as inner:
            (x * 3).sum().backward()
            raise ValueError("user code fails inside the inner block")
        (x * 4).sum().backward()
    assert [t.leaves["x"].grad.values for t in outer.traces] == [(2.0, 2.0), (3.0, 3.0), (4.0, 4.0)]
    assert [t.leaves["x"].grad.values for t in inner.traces] == [(3.0, 3.0)]
    _fault()


def test_a_pass_started_inside_a_recorded_pass() -> None:
    """A hook that runs its own backward over a shared leaf (a gradient penalty, say): both passes recorded,
    each with only its own nodes, and the same .grad as without tracing."""

    def penalty(x: torch.Tensor) -> None:
        with torch.enable_grad():  # backward runs with grad mode off
            (x**3).sum().backward()

    def run(traced: bool) -> tuple[bytes | None, list[tracer.Trace]]:
        x = torch.tensor([1.0, 2.0], requires_grad=True)
        h = x * 2
        h.register_hook(lambda g: penalty(x))
        y = (h * 5).sum()
        if not traced:
            y.backward()
            return _bits(x.grad), []
        with tracer.record() as rec:
            y.backward()
        return _bits(x.grad), rec.traces

    plain, _ = run(traced=False)
    grad, traces = run(traced=True)
    assert grad == plain
    outer, inner = traces  # the inner pass finishes first; traces stay in the order the passes started
    assert [outer.index, inner.index] == [1, 2]
    assert outer.leaves["x"].grad.values == (10.0, 10.0)
    assert inner.leaves["x"].grad.values == (3.0, 12.0)  # 3x², not mixed with the outer pass
    assert [s.name for s in inner.steps] == ["SumBackward0", "PowBackward0", "AccumulateGrad"]
    assert [s.name for s in outer.steps] == ["SumBackward0", "MulBackward0", "MulBackward0", "AccumulateGrad"]
    _fault()


# --------------------------------------------------------------------------- threads


def _in_threads(*work: Callable[[], None]) -> None:
    errors: list[BaseException] = []

    def guarded(fn: Callable[[], None]) -> None:
        try:
            fn()
        except BaseException as exc:  # re-raised in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(fn,)) for fn in work]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert not any(th.is_alive() for th in threads), "a thread hung"
    if errors:
        raise errors[0]


def test_two_threads_with_their_own_graphs(hook_calls: list[str]) -> None:
    def model(seed: int) -> tuple[torch.nn.Module, torch.Tensor]:
        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)), torch.randn(4, 6)

    def grads(m: torch.nn.Module) -> dict[str, bytes | None]:
        return {n: _bits(p.grad) for n, p in m.named_parameters()}

    plain = {}
    for seed in (1, 2):
        m, data = model(seed)
        for _ in range(10):
            m(data).pow(2).sum().backward()
        plain[seed] = grads(m)

    traced: dict[int, tuple[dict[str, bytes | None], list[tracer.Trace]]] = {}
    barrier = threading.Barrier(2, timeout=30)
    models = {seed: model(seed) for seed in (1, 2)}  # built here: torch's global RNG is shared by threads

    def work(seed: int) -> Callable[[], None]:
        def run() -> None:
            m, data = models[seed]
            with tracer.record(names=m) as rec:
                barrier.wait()
                for _ in range(10):
                    m(data).pow(2).sum().backward()
            traced[seed] = (grads(m), rec.traces)

        return run

    _in_threads(work(1), work(2))
    for seed in (1, 2):
        got, traces = traced[seed]
        assert got == plain[seed]
        assert len(traces) == 10 and all(t.complete and len(t.steps) == 11 for t in traces)
    hook_calls.clear()
    m, data = model(3)
    m(data).sum().backward()
    assert hook_calls == []
    _fault()


@pytest.mark.parametrize("other_recorded", [False, True], ids=["other-untraced", "other-traced"])
def test_a_leaf_shared_by_two_threads(other_recorded: bool) -> None:
    """Thread A is paused inside its recorded pass while thread B runs a whole pass through the same leaf (so
    through the same AccumulateGrad node, which carries A's hooks): neither trace may see the other's pass."""

    def choreography(traced: bool) -> tuple[bytes | None, list[tracer.Trace], list[tracer.Trace]]:
        x = torch.tensor([1.0, 2.0], requires_grad=True)
        a_paused, b_done = threading.Event(), threading.Event()
        a_traces: list[tracer.Trace] = []
        b_traces: list[tracer.Trace] = []

        def pause(g: torch.Tensor) -> None:
            a_paused.set()
            assert b_done.wait(timeout=30), "thread B did not finish"

        def thread_a() -> None:
            h = x * 2
            h.register_hook(pause)
            y = (h * 3).sum()
            if traced:
                with tracer.record() as rec:
                    y.backward()
                a_traces.extend(rec.traces)
            else:
                y.backward()

        def thread_b() -> None:
            assert a_paused.wait(timeout=30), "thread A did not start"
            y = (x * 5).sum()
            if traced and other_recorded:
                with tracer.record() as rec:
                    y.backward()
                b_traces.extend(rec.traces)
            else:
                y.backward()
            b_done.set()

        _in_threads(thread_a, thread_b)
        return _bits(x.grad), a_traces, b_traces

    plain, _, _ = choreography(traced=False)
    grad, (a,), b = choreography(traced=True)
    assert grad == plain  # 5 from B, then 6 from A
    assert a.complete and a.notes == ()
    assert [s.name for s in a.steps] == ["SumBackward0", "MulBackward0", "MulBackward0", "AccumulateGrad"]
    leaf = a.leaves["x"]
    assert leaf.grad.values == (6.0, 6.0)  # A's own gradient only
    # .grad when A's pass started, and after it: B's 5 landed in between, which the trace shows as it is
    assert leaf.grad_before is None and leaf.grad_total.values == (11.0, 11.0)
    if other_recorded:
        (b_trace,) = b
        assert [s.name for s in b_trace.steps] == ["SumBackward0", "MulBackward0", "AccumulateGrad"]
        assert b_trace.leaves["x"].grad.values == (5.0, 5.0)
    _fault()
