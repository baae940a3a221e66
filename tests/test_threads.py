"""Passes in other threads (issue 16, item 3): a thread the block's thread starts inside a record() block
belongs to it and its passes are recorded; any other thread's are not, and the block says so once. (A child
process cannot be recorded by the parent's block at all: docs/guide.md says so.)"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable

import pytest
import torch

import tracer
from tests.fuzzing import TALLY

pytestmark = pytest.mark.usefixtures("engine_restored")


def _run_in_thread(work: Callable[[], None]) -> None:
    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            work()
        except BaseException as exc:  # re-raised here
            errors.append(exc)

    th = threading.Thread(target=guarded, name="worker")
    th.start()
    th.join(timeout=60)
    assert not th.is_alive(), "the worker hung"
    if errors:
        raise errors[0]


def _train(model: torch.nn.Module, data: torch.Tensor, steps: int) -> None:
    for _ in range(steps):
        model(data).pow(2).mean().backward()


def _model() -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)), torch.randn(8, 3)


def test_a_thread_started_inside_the_block_is_recorded(hooks: str) -> None:
    model, data = _model()
    _run_in_thread(lambda: _train(model, data, 2))
    plain = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    model, data = _model()
    saliency: list[torch.Tensor] = []

    def input_gradient() -> None:
        x = data[:2].clone().requires_grad_()
        saliency.extend(torch.autograd.grad(model(x).sum(), x))

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with tracer.record(model=model) as rec:
            _run_in_thread(lambda: _train(model, data, 2))
            _run_in_thread(input_gradient)
    assert {n: p.grad for n, p in model.named_parameters()}.keys() == plain.keys()
    for n, p in model.named_parameters():
        assert p.grad is not None and torch.equal(p.grad, plain[n])
    assert rec.unrecorded == []
    assert [t.kind for t in rec.traces] == ["backward", "backward", "grad"]
    assert [t.index for t in rec.traces] == [1, 2, 3]
    assert all(t.complete and t.notes == () for t in rec.traces)
    assert set(rec.traces[0].leaves) == {"model.0.weight", "model.0.bias", "model.2.weight", "model.2.bias"}
    assert len(saliency) == 1
    TALLY["odd passes and tensors (same results as untraced; recorded, or noted once)"] += 1


def test_a_thread_running_before_the_block_is_noted_once(hooks: str) -> None:
    model, data = _model()
    go, done = threading.Event(), threading.Event()

    def long_running() -> None:  # e.g. a server's worker, started before anyone opened a block
        assert go.wait(timeout=30)
        _train(model, data, 3)
        done.set()

    th = threading.Thread(target=long_running)
    th.start()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with tracer.record() as rec:
                go.set()
                assert done.wait(timeout=30)
                _train(model, data, 1)  # the block's own thread: recorded
    finally:
        th.join(timeout=30)
    assert len(rec.traces) == 1
    assert len(rec.unrecorded) == 3 and len(set(rec.unrecorded)) == 1
    assert rec.unrecorded[0].startswith("not recorded, in another thread (not one the record() block's thread started")
    said = [str(w.message) for w in caught if issubclass(w.category, tracer.GradtraceWarning)]
    assert len(said) == 1 and "open a tracer.record() block in the other thread" in said[0]
    TALLY["odd passes and tensors (same results as untraced; recorded, or noted once)"] += 1


def test_a_thread_with_its_own_block_keeps_its_passes(hooks: str) -> None:
    """A thread started inside a block but opening a block of its own: its passes are its block's only."""
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    inner: list[tracer.Trace] = []

    def work() -> None:
        with tracer.record() as own:
            (x * 3).sum().backward()
        inner.extend(own.traces)

    with tracer.record() as outer:
        _run_in_thread(work)
    assert len(inner) == 1 and outer.traces == [] and outer.unrecorded == []
    assert x.grad is not None and x.grad.tolist() == [3.0, 3.0]


def test_only_threads_started_from_the_blocks_thread_belong_to_it(hooks: str) -> None:
    """Its workers' workers do too (a thread pool inside a worker); a thread another thread starts while the block
    happens to be open does not; and threading.Thread.start is Python's own again after the block."""
    from concurrent.futures import ThreadPoolExecutor

    original_start = threading.Thread.start
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    opened, started = threading.Event(), threading.Event()

    def outsider() -> None:  # started before the block; starts its own thread while the block is open
        assert opened.wait(timeout=30)
        _run_in_thread(lambda: (x * 7).sum().backward())
        started.set()

    other = threading.Thread(target=outsider)
    other.start()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tracer.GradtraceWarning)
        with tracer.record() as rec:
            opened.set()
            assert started.wait(timeout=30)
            with ThreadPoolExecutor(2) as pool:
                pool.submit(lambda: _run_in_thread(lambda: (x * 3).sum().backward())).result(timeout=30)
    other.join(timeout=30)
    (t,) = rec.traces
    assert t.leaves["x"].grad is not None and t.leaves["x"].grad.values == (3.0, 3.0)
    assert len(rec.unrecorded) == 1 and rec.unrecorded[0].startswith("not recorded, in another thread")
    assert x.grad is not None and x.grad.tolist() == [10.0, 10.0]
    assert threading.Thread.start is original_start
    TALLY["odd passes and tensors (same results as untraced; recorded, or noted once)"] += 1
