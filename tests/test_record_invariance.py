"""Tracing changes nothing: same gradient bits, same graph lifetime, user hooks fire, no hook of ours is left."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch.autograd.variable import Variable

import tracer
from tests.models import Boom
from tracer.record import recorder as record_module


def _mlp() -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
    return model, torch.randn(5, 8)


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("capture", ["auto", "stats", "full"])
def test_same_bits_as_untraced(capture: str) -> None:
    model, data = _mlp()
    model(data).pow(2).mean().backward()
    plain = _grads(model)
    model.zero_grad()
    trace = tracer.trace(model(data).pow(2).mean(), names=model, capture=capture)  # type: ignore[arg-type]
    for name, grad in _grads(model).items():
        assert torch.equal(grad, plain[name]), name
    assert set(trace.leaves) == {f"model.{n}" for n, _ in model.named_parameters()}


def test_second_backward_without_retain_graph_still_fails() -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * 2).sum()
    tracer.trace(y)
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()


def test_retain_graph_keeps_it_usable() -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * 2).sum()
    tracer.trace(y, retain_graph=True)
    y.backward()
    assert torch.allclose(x.grad, 4 * x.detach().exp())


def test_no_hook_left_after_the_pass(hook_calls: list[str]) -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    tracer.trace(y, retain_graph=True)
    assert hook_calls == ["post"] * 3
    hook_calls.clear()
    y.backward()  # the same graph again, untraced
    assert hook_calls == []


def test_no_hook_left_when_the_pass_raises(hook_calls: list[str]) -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = (Boom.apply(x) * 3).sum()
    with pytest.raises(ValueError, match="boom in backward") as info:
        tracer.trace(y, retain_graph=True)
    partial = info.value.partial_trace  # type: ignore[attr-defined]
    assert not partial.complete and "boom in backward" in partial.error
    failing = [s for s in partial.steps if s.note and s.note.startswith("raised")]
    assert [s.name for s in failing] == ["BoomBackward"]
    assert partial.leaves["x"].reason == "the pass stopped before reaching it"
    hook_calls.clear()
    with pytest.raises(ValueError):
        y.backward()
    assert hook_calls == []


def test_no_hook_left_when_the_seed_is_wrong(hook_calls: list[str]) -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match="Mismatch in shape"):
        tracer.trace(y, torch.ones(3))
    y.backward(torch.ones(2))
    assert hook_calls == []
    assert not isinstance(Variable._execution_engine, record_module._RecordingEngine)


def test_graph_and_saved_tensors_are_freed_as_without_tracing() -> None:
    def lifetimes(traced: bool) -> tuple[bool, bool]:
        x = torch.tensor([1.0, 2.0], requires_grad=True)
        h = x * 2
        y = (h**2).sum()  # PowBackward0 saves h
        ref = weakref.ref(h)
        del h
        gc.collect()
        alive_before = ref() is not None
        if traced:
            tracer.trace(y)
        else:
            y.backward()
        gc.collect()
        return alive_before, ref() is not None

    assert lifetimes(traced=False) == (True, False)
    assert lifetimes(traced=True) == (True, False)


def test_trace_holds_no_tensor() -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    trace = tracer.trace((x * 3).sum())

    def walk(obj: Any, depth: int = 0) -> Iterator[Any]:
        yield obj
        if depth > 12:
            return
        if hasattr(obj, "__dataclass_fields__"):
            for name in obj.__dataclass_fields__:
                yield from walk(getattr(obj, name), depth + 1)
        elif isinstance(obj, tuple | list):
            for item in obj:
                yield from walk(item, depth + 1)
        elif hasattr(obj, "values") and callable(obj.values):
            for item in obj.values():
                yield from walk(item, depth + 1)

    assert not any(isinstance(o, torch.Tensor | torch.autograd.graph.Node) for o in walk(trace))


def test_user_hooks_fire_with_the_same_values() -> None:
    def run(traced: bool) -> list[Any]:
        seen: list[Any] = []
        lin = torch.nn.Linear(3, 2)
        torch.nn.init.constant_(lin.weight, 0.5)
        torch.nn.init.constant_(lin.bias, 0.1)
        lin.register_full_backward_hook(lambda m, gi, go: seen.append(("module", go[0].tolist())))
        lin.weight.register_post_accumulate_grad_hook(lambda p: seen.append(("post_acc", p.grad.tolist())))
        x = torch.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
        h = lin(x)
        h.register_hook(lambda g: seen.append(("tensor", g.tolist())))
        h.grad_fn.register_hook(lambda gi, go: seen.append(("node", [g.tolist() for g in go if g is not None])))
        y = (h * torch.tensor([[2.0, 3.0]])).sum()
        if traced:
            tracer.trace(y)
        else:
            y.backward()
        seen.append(("x.grad", x.grad.tolist()))
        return seen

    assert run(traced=True) == run(traced=False)
    assert len(run(traced=True)) == 5


def test_a_tensor_hook_that_changes_the_gradient_is_seen() -> None:
    """v recorded at a node is what the node consumed: after the user's tensor hooks ran."""
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    h.register_hook(lambda g: g * 10)
    trace = tracer.trace(h.sum())
    mul = next(s for s in trace.steps if s.name == "MulBackward0")
    assert mul.v[0].values == (10.0, 10.0)
    assert x.grad.tolist() == [30.0, 30.0]


def test_create_graph_and_second_derivative_are_passes_of_their_own() -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    with tracer.record() as rec:
        y = (x**3).sum()
        (g,) = torch.autograd.grad(y, x, create_graph=True)
        g.sum().backward()
    assert [t.kind for t in rec.traces] == ["grad", "backward"]
    first, second = rec.traces
    assert first.options.create_graph
    assert first.leaves["x"].kind == "input"
    assert first.leaves["x"].grad.values == (3.0, 12.0)  # 3x²
    assert second.leaves["x"].grad.values == (6.0, 12.0)  # 6x
    assert x.grad.tolist() == [6.0, 12.0]


def test_engine_is_restored_after_the_block_also_on_exceptions() -> None:
    original = Variable._execution_engine
    with pytest.raises(KeyError), tracer.record():
        assert Variable._execution_engine is not original
        raise KeyError("inside")
    assert Variable._execution_engine is original


def test_the_collector_is_paused_only_during_the_pass_and_restored() -> None:
    import gc

    def automatic() -> bool:  # paused by a threshold of 0, leaving gc.isenabled() to the user (test_side_effects.py)
        return gc.isenabled() and gc.get_threshold()[0] != 0

    seen: list[bool] = []
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    h.register_hook(lambda g: seen.append(automatic()))
    assert automatic()
    tracer.trace(h.sum())
    assert seen == [False] and automatic()  # paused inside the pass, back on after it
    gc.disable()
    try:
        tracer.trace((x * 3).sum())
        assert not gc.isenabled()  # a user who turned it off keeps it off
    finally:
        gc.enable()


def test_a_torch_without_the_engine_object_gets_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """record() wraps a private attribute of torch's: where a torch lacks it, say so and change nothing."""
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    monkeypatch.delattr(Variable, "_execution_engine")
    model = torch.nn.Linear(2, 1)
    with (
        pytest.raises(tracer.GradtraceError, match=r"has no autograd engine object .* nothing was changed"),
        tracer.record(model=model),
    ):
        pass  # pragma: no cover - never entered
    monkeypatch.undo()
    assert not record_module._open_recorders and not hasattr(torch.autograd.backward, "__wrapped__")
    assert not model._forward_pre_hooks and not model._forward_hooks  # the module tags were taken off again
    tracer.trace((x * x).sum())  # the real engine still works, and is restored afterwards
    assert x.grad.tolist() == [2.0, 4.0]
