"""tracer.record() catches every way of starting a pass, in order, per thread, and nests."""

from __future__ import annotations

import threading

import pytest
import torch
from torch.autograd import grad as imported_before_the_block

import tracer


def test_every_entry_point_is_recorded_in_order() -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    with tracer.record() as rec:
        (x * 2).sum().backward()
        torch.autograd.backward([(x**2).sum()])
        imported_before_the_block((x**3).sum(), x)
    assert [t.kind for t in rec.traces] == ["backward", "backward", "grad"]
    assert [t.index for t in rec.traces] == [1, 2, 3]
    assert rec.traces[0].leaves["x"].grad.values == (2.0, 2.0)
    assert rec.traces[1].leaves["x"].grad_before.values == (2.0, 2.0)
    assert rec.traces[1].leaves["x"].grad_total.values == (4.0, 6.0)
    assert rec.traces[2].leaves["x"].grad.values == (3.0, 12.0)


def test_source_line_of_the_pass() -> None:
    x = torch.tensor([1.0], requires_grad=True)
    with tracer.record() as rec:
        x.sum().backward()
        line = __import__("inspect").currentframe().f_lineno - 1
    assert rec.traces[0].source == f"{__file__}:{line}"


def test_anomaly_mode_gives_each_node_its_forward_line() -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    with torch.autograd.set_detect_anomaly(True):
        y = x.sin()
        line = __import__("inspect").currentframe().f_lineno - 1
        trace = tracer.trace(y.sum())
    sin = next(s for s in trace.steps if s.name == "SinBackward0")
    assert sin.source == f"{__file__}:{line}"


def test_nested_blocks_both_see_inner_passes() -> None:
    x = torch.tensor([1.0], requires_grad=True)
    with tracer.record() as outer:
        x.sum().backward()
        with tracer.record(label="inner") as inner:
            (x * 2).sum().backward()
        (x * 3).sum().backward()
    assert [t.index for t in outer.traces] == [1, 2, 3]
    assert [t.index for t in inner.traces] == [1]
    assert inner.traces[0].label == "inner"
    assert outer.traces[1].leaves == inner.traces[0].leaves


def test_a_block_cannot_be_entered_twice() -> None:
    rec = tracer.record()
    with rec, pytest.raises(tracer.GradtraceError, match="already open"), rec:
        pass


def test_threads_record_their_own_passes() -> None:
    results: dict[str, list[tracer.Trace]] = {}
    barrier = threading.Barrier(2)

    def work(name: str, scale: float) -> None:
        x = torch.tensor([1.0, 2.0], requires_grad=True)
        with tracer.record() as rec:
            barrier.wait()
            for _ in range(20):
                (x * scale).sum().backward()
        results[name] = rec.traces

    threads = [threading.Thread(target=work, args=(n, s)) for n, s in (("a", 2.0), ("b", 5.0))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(results["a"]) == len(results["b"]) == 20
    assert all(t.leaves["x"].grad.values == (2.0, 2.0) for t in results["a"])
    assert all(t.leaves["x"].grad.values == (5.0, 5.0) for t in results["b"])


def test_passes_outside_any_block_are_not_recorded() -> None:
    x = torch.tensor([1.0], requires_grad=True)
    with tracer.record() as rec:
        pass
    x.sum().backward()
    assert rec.traces == []


def test_a_pass_that_raises_inside_a_block_is_kept_incomplete() -> None:
    class Bad(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):  # type: ignore[no-untyped-def]
            return x.clone()

        @staticmethod
        def backward(ctx, g):  # type: ignore[no-untyped-def]
            raise ArithmeticError("bad backward")

    x = torch.tensor([1.0], requires_grad=True)
    with tracer.record() as rec:
        with pytest.raises(ArithmeticError):
            Bad.apply(x).sum().backward()
        (x * 2).sum().backward()
    assert [t.complete for t in rec.traces] == [False, True]
    assert rec.traces[0].error == "ArithmeticError: bad backward"


def test_errors_inside_a_block_are_explained_and_entry_points_restored() -> None:
    original_backward, original_grad = torch.autograd.backward, torch.autograd.grad
    x = torch.ones(3, requires_grad=True)
    with tracer.record() as rec, pytest.raises(RuntimeError, match="implicitly created") as info:
        (x * 2).backward()
    assert "shape [3]" in "\n".join(info.value.__notes__)  # the output's shape: the note knows the output
    assert rec.traces == []  # the error came before the engine ran: no pass
    assert torch.autograd.backward is original_backward and torch.autograd.grad is original_grad


def test_seeds_made_by_torch_are_known_inside_a_block() -> None:
    x = torch.ones(2, requires_grad=True)
    with tracer.record() as rec:
        (x * 2).sum().backward()
        (x * 2).backward(torch.ones(2))
    assert [t.seeds[0].implicit for t in rec.traces] == [True, False]


def test_on_pass_gets_each_pass_as_it_ends_and_never_raises_into_the_users_backward() -> None:
    """record(on_pass=...) hands each finished pass over at once (what `gradtrace run` writes to disk), the same
    Trace as rec.traces; a callback that raises is a warning, not an error in the user's backward call."""
    import warnings

    seen: list[tracer.Trace] = []
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    with tracer.record(on_pass=seen.append, label="run") as rec:
        (x * x).sum().backward()
        assert len(seen) == 1  # already there, before the block ends
        (x * 3).sum().backward()
    assert [t.index for t in seen] == [1, 2] and seen == rec.traces and seen[0].label == "run"

    def broken(trace: tracer.Trace) -> None:
        raise RuntimeError("disk full")

    x.grad = None
    with warnings.catch_warnings(record=True) as caught, tracer.record(on_pass=broken) as rec:
        warnings.simplefilter("always")
        (x * x).sum().backward()
    assert torch.equal(x.grad, torch.tensor([2.0, 4.0])) and len(rec.traces) == 1
    assert any("on_pass raised RuntimeError: disk full" in str(w.message) for w in caught)
