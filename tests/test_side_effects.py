"""Recording leaves no side effects (issue 16, item 6): what the user's code sees after a recorded pass — the random
generators, the garbage collector's settings, the warnings shown, the names of the pass's inputs — is what it sees
after the same pass run without gradtrace."""

from __future__ import annotations

import gc
import random
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch

import tracer
from tests.fuzzing import TALLY

pytestmark = pytest.mark.usefixtures("engine_restored")

SIDE_EFFECTS = "side effects compared with untraced runs (RNG, gc, warnings, names)"


@contextmanager
def maybe_recorded(traced: bool) -> Iterator[list[tracer.Trace]]:
    traces: list[tracer.Trace] = []
    if not traced:
        yield traces
        return
    with tracer.record() as rec:
        yield traces
    traces.extend(rec.traces)


def same_with_and_without(run: Callable[[bool], Any]) -> Any:
    plain = run(False)
    traced = run(True)
    assert traced == plain, "tracing changed what the user observes"
    TALLY[SIDE_EFFECTS] += 1
    return traced


# --------------------------------------------------------------------------- random generators


class NoisyBackward(torch.autograd.Function):
    """A straight-through estimator whose backward adds noise from every global generator."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return torch.sign(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad + 0.01 * torch.randn(grad.shape) + 0.01 * random.random()


class NoisyForward(torch.autograd.Function):
    """Saves exactly its input, so gradtrace re-runs the forward for a numeric reference; the forward draws."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x * 2 + 0 * torch.rand(()) + 0 * random.random()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad * 2


def _next_draws() -> tuple[list[float], list[float], float]:
    return torch.randn(3).tolist(), torch.rand(2).tolist(), random.random()


@pytest.mark.parametrize("function", [NoisyBackward, NoisyForward], ids=["backward", "forward"])
def test_random_generators_continue_as_without_tracing(hooks: str, function: Any) -> None:
    def run(traced: bool) -> tuple[Any, ...]:
        torch.manual_seed(0)
        random.seed(0)
        w = torch.randn(4, requires_grad=True)
        with maybe_recorded(traced) as traces:
            (function.apply(w) * torch.arange(4.0)).sum().backward()
        if traced:
            step = next(s for s in traces[0].steps if s.name.startswith(function.__name__))
            assert step.jacobian is not None, step.note  # the node was called again: the case under test
        assert w.grad is not None
        return w.grad.tolist(), _next_draws()

    same_with_and_without(run)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_generator_continues_as_without_tracing(hooks: str) -> None:
    class CudaNoise(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
            return x.clone()

        @staticmethod
        def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
            return grad + 0.01 * torch.randn(grad.shape, device="cuda").cpu()

    def run(traced: bool) -> tuple[Any, ...]:
        torch.manual_seed(0)
        w = torch.randn(4, requires_grad=True)
        with maybe_recorded(traced):
            CudaNoise.apply(w).sum().backward()
        assert w.grad is not None
        return w.grad.tolist(), torch.randn(3, device="cuda").tolist()

    same_with_and_without(run)


# --------------------------------------------------------------------------- garbage collector


@pytest.fixture
def collector_restored() -> Iterator[None]:
    enabled, thresholds = gc.isenabled(), gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)
    if enabled:
        gc.enable()
    else:
        gc.disable()


def _collector() -> tuple[bool, tuple[int, ...]]:
    return gc.isenabled(), gc.get_threshold()


@pytest.mark.usefixtures("collector_restored")
@pytest.mark.parametrize("change", ["disable", "enable", "set_threshold"])
def test_a_collector_setting_changed_during_the_pass_holds_after_it(hooks: str, change: str) -> None:
    """The user's hook changes the collector's settings while the pass runs (another thread could too)."""

    def run(traced: bool) -> tuple[Any, ...]:
        gc.set_threshold(700, 10, 10)
        gc.disable() if change == "enable" else gc.enable()
        x = torch.tensor([1.0, 2.0], requires_grad=True)
        h = x * 3
        if change == "disable":
            h.register_hook(lambda g: gc.disable())
        elif change == "enable":
            h.register_hook(lambda g: gc.enable())
        else:
            h.register_hook(lambda g: gc.set_threshold(500, 5, 5))
        with maybe_recorded(traced):
            (h * h).sum().backward()
        return _collector()

    same_with_and_without(run)


@pytest.mark.usefixtures("collector_restored")
def test_another_thread_disabling_the_collector_mid_pass_is_respected(hooks: str) -> None:
    def run(traced: bool) -> tuple[Any, ...]:
        gc.enable()
        mid_pass, disabled = threading.Event(), threading.Event()

        def other_thread() -> None:
            mid_pass.wait(10)
            gc.disable()
            disabled.set()

        thread = threading.Thread(target=other_thread)
        thread.start()
        x = torch.tensor([1.0, 2.0], requires_grad=True)
        h = x * 3

        def hook(g: torch.Tensor) -> None:
            mid_pass.set()
            disabled.wait(10)

        h.register_hook(hook)
        with maybe_recorded(traced):
            (h * h).sum().backward()
        thread.join()
        return _collector()

    assert same_with_and_without(run)[0] is False


@pytest.mark.usefixtures("collector_restored")
def test_automatic_collection_is_paused_while_a_pass_is_recorded(hooks: str) -> None:
    seen: list[tuple[bool, tuple[int, ...]]] = []
    gc.enable()
    before = _collector()
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    h.register_hook(lambda g: seen.append(_collector()))
    with tracer.record():
        (h * h).sum().backward()
    assert seen == [(True, (0, *before[1][1:]))]  # paused by the threshold; the on/off switch is the user's
    assert _collector() == before


@pytest.mark.usefixtures("collector_restored")
@pytest.mark.parametrize("first_to_end", ["a", "b"])
def test_passes_overlapping_in_two_threads_leave_the_collector_as_it_was(hooks: str, first_to_end: str) -> None:
    """Thread a's pass starts, then b's; one ends while the other still runs; then the other ends."""
    gc.enable()
    gc.set_threshold(700, 10, 10)
    before = _collector()
    started = {name: threading.Event() for name in "ab"}
    release = {name: threading.Event() for name in "ab"}
    during: dict[str, tuple[bool, tuple[int, ...]]] = {}
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            x = torch.tensor([1.0, 2.0], requires_grad=True)
            h = x * 3

            def hook(g: torch.Tensor) -> None:
                started[name].set()
                release[name].wait(10)
                during[name] = _collector()

            h.register_hook(hook)
            with tracer.record():
                (h * h).sum().backward()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = {name: threading.Thread(target=worker, args=(name,)) for name in "ab"}
    try:
        threads["a"].start()
        assert started["a"].wait(10)
        threads["b"].start()
        assert started["b"].wait(10)
        release[first_to_end].set()
        threads[first_to_end].join(10)
        paused_between = gc.get_threshold()[0] == 0
    finally:  # the other pass ends now (or, after a failure, every thread is let go)
        for name in "ab":
            release[name].set()
            if threads[name].ident is not None:  # started
                threads[name].join(10)
    assert not errors, errors
    assert paused_between, "the pause ended while a pass was still recorded"
    assert _collector() == before
    assert all(state[0] for state in during.values())
    TALLY[SIDE_EFFECTS] += 1


# --------------------------------------------------------------------------- warnings


class Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return 2 * x * grad


def test_create_graph_through_a_custom_function_warns_nothing(hooks: str) -> None:
    """Under pytest's filterwarnings = error (pyproject), any warning of ours would raise here."""

    def run(traced: bool) -> tuple[Any, ...]:
        x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
        with maybe_recorded(traced) as traces:
            (g,) = torch.autograd.grad(Square.apply(x).sum(), x, create_graph=True)
            g.sum().backward()
        if traced:
            assert all(t.notes == () for t in traces), [t.notes for t in traces]
            step = next(s for s in traces[0].steps if s.name.startswith("SquareBackward"))
            assert step.jacobian is not None and step.check is not None and step.check.ok
        assert x.grad is not None
        return g.tolist(), x.grad.tolist()

    same_with_and_without(run)


class WarningBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x * 2

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        warnings.warn("the user's backward warns", UserWarning, stacklevel=1)
        return grad * 2


@pytest.mark.parametrize("action", ["always", "default"])
def test_the_users_own_warnings_are_shown_exactly_as_without_tracing(hooks: str, action: str) -> None:
    """Shown once per call of the user's backward ("always"), or once in all ('default': gradtrace must not make
    Python forget which warnings it already showed); never for gradtrace's extra calls."""

    def run(traced: bool) -> list[str]:
        shown: list[str] = []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter(action)
            for _ in range(3):
                x = torch.tensor([1.0, 2.0], requires_grad=True)
                with maybe_recorded(traced):
                    WarningBackward.apply(x).sum().backward()
            shown = [str(w.message) for w in caught]
        return shown

    shown = same_with_and_without(run)
    assert shown == ["the user's backward warns"] * (3 if action == "always" else 1)


def test_a_warning_from_another_thread_during_our_calls_is_shown(hooks: str) -> None:
    """The warnings gradtrace hides are its own thread's, inside its own calls; another thread's reach the user."""
    inside, done = threading.Event(), threading.Event()

    class Waits(torch.autograd.Function):
        calls = 0

        @staticmethod
        def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
            return x * 2

        @staticmethod
        def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
            Waits.calls += 1
            if Waits.calls == 2:  # gradtrace's first extra call
                inside.set()
                done.wait(10)
            return grad * 2

    def other_thread() -> None:
        inside.wait(10)
        warnings.warn("another thread warns", UserWarning, stacklevel=1)
        done.set()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        thread = threading.Thread(target=other_thread)
        thread.start()
        x = torch.tensor([1.0, 2.0], requires_grad=True)
        with tracer.record():
            Waits.apply(x).sum().backward()
        thread.join(10)
    assert [str(w.message) for w in caught] == ["another thread warns"]
    TALLY[SIDE_EFFECTS] += 1


# --------------------------------------------------------------------------- names of inputs


def test_an_unnamed_input_that_is_a_leaf_is_listed_once(hooks: str) -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)

    def make() -> torch.Tensor:
        w = torch.tensor([3.0, 4.0], requires_grad=True)  # no variable of the caller holds it
        return (x * w).sum()

    def second_leaf(y: torch.Tensor) -> torch.Tensor:
        return y.grad_fn.next_functions[0][0].next_functions[1][0].variable  # type: ignore[union-attr]

    y = make()
    with tracer.record() as rec:
        grads = torch.autograd.grad(y, [x, second_leaf(y)])
    (trace,) = rec.traces
    assert sorted(trace.leaves) == ["leaf0", "x"]
    assert trace.options.inputs == ("x", "leaf0")
    assert trace.leaves["leaf0"].kind == "input"
    assert trace.leaves["leaf0"].grad is not None
    assert trace.leaves["leaf0"].grad.as_tensor().tolist() == grads[1].tolist()
    nodes = [leaf.node for leaf in trace.leaves.values()]
    assert len(nodes) == len(set(nodes)), "one node listed under two names"
    TALLY[SIDE_EFFECTS] += 1


def test_a_tensor_given_twice_as_input_is_listed_once(hooks: str) -> None:
    def make() -> torch.Tensor:
        return torch.tensor([1.0, 2.0], requires_grad=True)

    def intermediate() -> tuple[torch.Tensor, torch.Tensor]:
        h = make() * 2
        return (h * h).sum(), h

    def leaf() -> tuple[torch.Tensor, torch.Tensor]:
        w = make()
        return (w * w).sum(), w

    for make_pass in (leaf, intermediate):
        pair = make_pass()
        with tracer.record() as rec:
            torch.autograd.grad(pair[0], [pair[1], pair[1]])
        (trace,) = rec.traces
        assert trace.options.inputs is not None
        assert len(set(trace.options.inputs)) == 1, trace.options.inputs
        inputs = [name for name, leaf in trace.leaves.items() if leaf.kind == "input"]
        assert inputs == [trace.options.inputs[0]]
    TALLY[SIDE_EFFECTS] += 1
