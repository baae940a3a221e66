"""The native recorder (tracer/record/native/native_hooks.cpp) records exactly what the Python hooks record,
leaves no hook behind, and is optional: without it gradtrace says how to build it and records in Python.

The project's set-up builds it and sets GRADTRACE_REQUIRE_NATIVE=1, so in CI a failed build fails here
instead of quietly testing only the Python hooks."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given

import tracer
from tests.cases import CASES, Case
from tests.fuzzing import TALLY, fuzz_settings
from tests.models import Boom, mlp, transformer
from tests.random_graphs import Program, programs
from tracer.model.serial import dumps
from tracer.record import pass_recorder
from tracer.record.native import loader as native
from tracer.record.tensors import SAMPLE_BLOCK, SAMPLE_SIZE, _sample_index

NATIVE = native.load()
if NATIVE is None and os.environ.get("GRADTRACE_REQUIRE_NATIVE") == "1":
    raise RuntimeError(f"GRADTRACE_REQUIRE_NATIVE=1 but {native.status()}")
needs_native = pytest.mark.skipif(NATIVE is None, reason=native.status())


@pytest.fixture
def python_hooks(monkeypatch: pytest.MonkeyPatch) -> Callable[[], object]:
    """Call the returned function to switch to the Python hooks for the rest of the test."""

    def switch() -> object:
        monkeypatch.setattr(pass_recorder, "native_recorder", lambda: None)
        return None

    return switch


def both_ways(make: Callable[[], tracer.Trace], python_hooks: Callable[[], object]) -> tuple[str, str]:
    """The same pass recorded by the native hooks and by the Python hooks, as JSON (every number, every
    sample statistic, every array of capture="full")."""
    native_json = dumps(make())
    python_hooks()
    return native_json, dumps(make())


def _case_trace(case: Case, capture: str) -> tracer.Trace:
    leaves = case.leaves()
    y = case.forward(leaves)
    return tracer.trace(y, case.seed(y), names=leaves, capture=capture)  # type: ignore[arg-type]


@needs_native
@pytest.mark.parametrize("capture", ["auto", "full"])
@pytest.mark.parametrize("case", CASES, ids=repr)
def test_tutorial_cases_record_the_same(case: Case, capture: str, python_hooks: Callable[[], object]) -> None:
    a, b = both_ways(lambda: _case_trace(case, capture), python_hooks)
    assert a == b


def _model_trace(build: Callable[[], tuple[torch.nn.Module, torch.Tensor, torch.Tensor]], capture: str) -> tracer.Trace:
    model, x, target = build()
    loss = torch.nn.functional.mse_loss(model(x), target)
    return tracer.trace(loss, names=model, capture=capture)  # type: ignore[arg-type]


def _big_mlp() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """Gradients above the sample size (sampled), between max_values and it (read whole), and small ones."""
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Linear(64, 48), torch.nn.ReLU(), torch.nn.Linear(48, 8))
    return model, torch.randn(40, 64), torch.randn(40, 8)


@needs_native
@pytest.mark.parametrize("capture", ["auto", "full"])
@pytest.mark.parametrize("build", [mlp, transformer, _big_mlp], ids=["mlp", "transformer", "big_mlp"])
def test_models_record_the_same(
    build: Callable[[], tuple[torch.nn.Module, torch.Tensor, torch.Tensor]],
    capture: str,
    python_hooks: Callable[[], object],
) -> None:
    a, b = both_ways(lambda: _model_trace(build, capture), python_hooks)
    assert a == b
    assert '"sampled": 1024' in a or build is not _big_mlp  # the sampled path was exercised


@needs_native
@fuzz_settings(40)
@given(program=programs())
def test_random_graphs_record_the_same(program: Program) -> None:
    def make() -> tuple[str | None, str]:
        """The trace as JSON; for a program whose backward raises, the error and the partial trace."""
        leaves = program.leaves()
        out = program.forward(leaves)
        try:
            return None, dumps(tracer.trace(out, program.seed(out), names=leaves))
        except Exception as exc:
            partial = getattr(exc, "partial_trace", None)
            return f"{type(exc).__name__}: {exc}", "" if partial is None else dumps(partial)

    native_result = make()
    original = pass_recorder.native_recorder
    pass_recorder.native_recorder = lambda: None  # hypothesis runs many examples per test: no fixture here
    try:
        python_result = make()
    finally:
        pass_recorder.native_recorder = original
    assert native_result == python_result
    TALLY["random graphs recorded the same by native and Python hooks"] += 1


@needs_native
def test_seeds_grad_before_retained_inputs_and_complex_record_the_same(python_hooks: Callable[[], object]) -> None:
    def make() -> tracer.Trace:
        torch.manual_seed(5)
        w = torch.randn(40, 40, requires_grad=True)
        w.grad = torch.full((40, 40), 0.5)  # accumulation onto an earlier .grad, large enough to be sampled
        z = torch.randn(3, dtype=torch.complex64, requires_grad=True)
        h = w.tanh()
        h.retain_grad()
        y = (h @ w).sin() * 3
        c = (z * z.conj()).real.sum()
        out = torch.cat([y.reshape(-1), c.reshape(1)])
        seed = torch.linspace(-1, 1, out.numel())  # large seed: exact statistics
        return tracer.trace(out, seed, names={"w": w, "z": z, "h": h})

    a, b = both_ways(make, python_hooks)
    assert a == b

    def grad_of_inputs() -> tracer.Trace:
        x = torch.linspace(0, 2, 2000, requires_grad=True)
        with tracer.record(names={"x": x}) as rec:
            torch.autograd.grad((x.exp() * x).sum(), [x])
        return rec.traces[0]

    a, b = both_ways(grad_of_inputs, python_hooks)
    assert a == b


@needs_native
@pytest.mark.parametrize("fill", [1e30, float("nan"), float("inf")], ids=["overflowing-squares", "nan", "inf"])
def test_leaf_norms_that_are_not_finite_record_the_same(fill: float, python_hooks: Callable[[], object]) -> None:
    """A leaf gradient whose norm is not finite: NaN and Inf counted, or (squares overflowing float32 while
    every element is finite) the norm rescaled, as the Python table does."""

    def make() -> tracer.Trace:
        w = torch.ones(3000, requires_grad=True)
        scale = torch.full((3000,), fill)
        scale[::7] = 1.0
        return tracer.trace((w * scale).sum(), names={"w": w})

    a, b = both_ways(make, python_hooks)
    assert a == b
    grad = tracer.load(a).leaves["w"].grad_total
    assert grad is not None and grad.stats is not None and grad.stats.norm_exact is True
    if fill == 1e30:
        assert grad.stats.norm == pytest.approx(1e30 * (3000 - 429) ** 0.5, rel=1e-5) and grad.stats.inf == 0


@needs_native
def test_no_native_hook_is_left_behind() -> None:
    assert NATIVE is not None
    model, x, target = mlp()
    tracer.trace(torch.nn.functional.mse_loss(model(x), target), retain_graph=True)
    assert NATIVE.live_hooks() == 0
    y = Boom.apply(torch.ones(3, requires_grad=True)).sum()
    with pytest.raises(ValueError, match="boom in backward"):
        tracer.trace(y)
    assert NATIVE.live_hooks() == 0

    def interrupt(_: torch.Tensor) -> None:
        raise KeyboardInterrupt

    w = torch.ones(3, requires_grad=True)
    h = w * 2
    h.register_hook(interrupt)
    with pytest.raises(KeyboardInterrupt), tracer.record() as rec:
        (h * h).sum().backward()
    assert NATIVE.live_hooks() == 0
    assert not rec.traces[0].complete


@needs_native
def test_threads_each_record_their_own_pass() -> None:
    shared = torch.randn(30, 30, requires_grad=True)  # one AccumulateGrad node in both passes
    results: dict[int, tracer.Trace] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def work(k: int) -> None:
        try:
            y = ((shared * (k + 1)).tanh() ** 2).sum()
            start.wait()
            results[k] = tracer.trace(y, names={"shared": shared})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors and sorted(results) == [0, 1]
    for k, trace in results.items():
        names = [s.name for s in trace.steps]
        assert names == ["SumBackward0", "PowBackward0", "TanhBackward0", "MulBackward0", "AccumulateGrad"]
        u = shared.detach() * (k + 1)
        expected = 2 * u.tanh() * (1 - u.tanh() ** 2) * (k + 1)  # this thread's gradient, not the other's
        got = trace.steps[3].vjp[0]
        assert got is not None and got.stats is not None
        assert got.stats.norm == pytest.approx(float(expected.norm()), rel=1e-5)


@pytest.mark.parametrize("native_on", [True, False], ids=["native", "python"])
def test_a_record_reads_the_values_of_its_pass_not_later_ones(
    native_on: bool, python_hooks: Callable[[], object]
) -> None:
    """Traces are built when read; what they show must still be what the pass saw, also in capture="full"
    where a leaf's gradient is kept whole (the next pass accumulates into .grad in place)."""
    if native_on and NATIVE is None:
        pytest.skip(native.status())
    if not native_on:
        python_hooks()
    w = torch.linspace(-1, 1, 3000, requires_grad=True)
    with tracer.record(names={"w": w}, capture="full") as rec:
        (w * 2).sum().backward()
        (w * 5).sum().backward()  # accumulates into the same .grad tensor
        w.grad.zero_()  # an optimizer's zero_grad(set_to_none=False)
    first, second = rec.traces
    assert np.all(first.leaves["w"].grad.array == 2)  # type: ignore[union-attr]
    assert np.all(second.leaves["w"].grad.array == 5)  # type: ignore[union-attr]
    assert first.leaves["w"].grad_total.stats.norm == pytest.approx(2 * 3000**0.5)  # type: ignore[union-attr]
    assert second.leaves["w"].grad_total.stats.norm == pytest.approx(7 * 3000**0.5)  # type: ignore[union-attr]


@needs_native
def test_sample_rows_reused_by_later_passes_never_change_an_earlier_trace() -> None:
    """The native table hands its sample blocks to the next pass once nothing refers to them: passes read
    late, passes read while others run, and passes whose recorder is gone must each keep their own samples."""

    def stats_of(trace: tracer.Trace) -> list[tuple[float, float, float]]:
        out = []
        for step in trace.steps:
            for info in step.vjp:
                if info is not None and info.stats is not None and info.stats.sampled:
                    out.append((info.stats.min, info.stats.max, info.stats.mean))
        return out

    def one_pass(scale: float) -> tuple[tracer.Trace, list[tuple[float, float, float]]]:
        x = torch.linspace(-1, 1, 40_000, requires_grad=True)
        y = (x.sin() * scale).exp().sum()
        trace = tracer.trace(y)
        return trace, stats_of(trace)

    expected = {scale: one_pass(scale)[1] for scale in (1.0, 2.0, 3.0)}
    assert all(expected[1.0]) and expected[1.0] != expected[2.0]  # sampled, and the passes differ
    with tracer.record() as rec:  # three passes recorded, none read until all have run
        for scale in (1.0, 2.0, 3.0):
            x = torch.linspace(-1, 1, 40_000, requires_grad=True)
            (x.sin() * scale).exp().sum().backward()
    first = rec.traces[0]  # read: its blocks go back to the pool while the other two are still unread
    one_pass(5.0)  # a pass that takes blocks from the pool
    assert [stats_of(t) for t in (first, *rec.traces[1:])] == [expected[1.0], expected[2.0], expected[3.0]]


@needs_native
def test_a_sample_block_is_reused_only_once_nothing_sees_it() -> None:
    """The pool's rule, on the native table itself: a block whose rows are still viewed (an exported payload)
    is never written by another pass; once the views are gone, the next pass writes into it instead of
    asking the system for fresh memory."""
    assert NATIVE is not None

    def sampled_row(scale: float) -> tuple[object, torch.Tensor]:
        table = NATIVE.Pass(64, SAMPLE_SIZE, SAMPLE_BLOCK, False, 0)
        handle = table.add(torch.linspace(-1, 1, 50_000) * scale, False, False, False, False, False)
        row = table.export_entries()[handle][5]  # a view of the block's row
        return table, row

    first, row = sampled_row(1.0)
    seen = row.clone()
    first.clear()  # its block goes to the pool while `row` still views it
    pooled, viewed = NATIVE.pooled_blocks()
    assert viewed >= 1
    _second, other = sampled_row(7.0)
    assert torch.equal(row, seen) and other.data_ptr() != row.data_ptr()
    del row
    assert NATIVE.pooled_blocks()[1] == viewed - 1  # nothing sees that block now
    pooled, viewed = NATIVE.pooled_blocks()
    _, reused = sampled_row(3.0)
    assert NATIVE.pooled_blocks() == (pooled - 1, viewed)  # taken from the pool, not allocated
    assert torch.equal(reused, seen * 3)


def _scaling(name: str, factor: float) -> Any:
    """A custom Function multiplying by `factor`, named `name` (its node is `<name>Backward`)."""

    def forward(ctx: object, x: torch.Tensor) -> torch.Tensor:
        return factor * x

    def backward(ctx: object, g: torch.Tensor) -> torch.Tensor:
        return factor * g

    methods = {"forward": staticmethod(forward), "backward": staticmethod(backward)}
    return type(name, (torch.autograd.Function,), methods)


_Twice, _Thrice = _scaling("_Twice", 2.0), _scaling("_Thrice", 3.0)


@needs_native
def test_node_names_are_cached_per_cpp_type_but_custom_functions_keep_their_own() -> None:
    """The native walk names nodes once per C++ type; every custom Function is the same C++ type (PyNode),
    named by its Python class."""
    x = torch.ones(3, requires_grad=True)
    names = [step.name for step in tracer.trace(_Thrice.apply(_Twice.apply(x) * x).sum()).steps]
    assert names == ["SumBackward0", "_ThriceBackward", "MulBackward0", "_TwiceBackward", "AccumulateGrad"]


def _layouts() -> Iterator[tuple[str, torch.Tensor]]:
    """Tensors laid out the ways gradients are: contiguous, transposed, expanded, strided slices, permuted,
    with size-1 dims, offset into their storage; in the dtypes a gradient can have."""
    base = torch.linspace(-3, 3, 6 * 130 * 70).reshape(6, 130, 70)
    yield "contiguous", base
    yield "transposed", base[0].t()
    yield "expanded", torch.linspace(-1, 1, 70).expand(130, 70)
    yield "expanded scalar", torch.tensor(2.5).expand(40, 60)
    yield "strided slice", base[:, ::3, 1::2]
    yield "permuted", base.permute(2, 0, 1)
    yield "size-1 dims", base[1:2, :, None, 5:60].transpose(0, 3)
    yield "offset", base.reshape(-1)[777 : 777 + 5000]
    yield "runs across rows", torch.arange(3 * 1999, dtype=torch.float32).reshape(3, 1999).t()
    for dtype in (torch.float64, torch.float16, torch.bfloat16, torch.int8, torch.bool):
        yield f"transposed {dtype}", (base[0].t() * 10).to(dtype)


@needs_native
@pytest.mark.parametrize(("layout", "tensor"), list(_layouts()), ids=[name for name, _ in _layouts()])
def test_a_native_sample_is_torch_take_at_the_sample_positions(layout: str, tensor: torch.Tensor) -> None:
    """The native gather reads strided memory itself (no copy of a non-contiguous gradient): bit for bit the
    elements torch.take finds at the sample positions tensors.py chooses."""
    assert NATIVE is not None
    table = NATIVE.Pass(64, SAMPLE_SIZE, SAMPLE_BLOCK, False, 0)
    handle = table.add(tensor, False, False, False, False, False)
    row = table.export_entries()[handle][5]
    expected = torch.take(tensor, _sample_index(tensor.numel(), None))
    assert row.dtype == tensor.dtype and row.shape == expected.shape
    assert torch.equal(row.view(torch.uint8), expected.view(torch.uint8)), layout


def test_traces_are_built_when_first_read() -> None:
    x = torch.linspace(0, 1, 5000, requires_grad=True)
    with tracer.record() as rec:
        (x.sin() * x).sum().backward()
    assert rec._built == 0 and len(rec._recorded) == 1  # nothing built inside the block
    trace = rec.traces[0]
    assert rec._built == 1 and rec.traces[0] is trace  # built once


def test_without_a_build_recording_uses_python_and_says_how(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GRADTRACE_NATIVE", raising=False)
    monkeypatch.setenv("GRADTRACE_NATIVE_DIR", str(tmp_path))
    monkeypatch.setattr(native, "_loaded", {})
    assert native.load() is None
    assert native.status() == (
        "native recorder: not built; recording uses Python hooks. Build it with: python -m tracer.native"
    )
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    assert tracer.trace((x * x).sum()).leaves["x"].grad.values == (2.0, 4.0)  # type: ignore[union-attr]
    monkeypatch.setenv("GRADTRACE_NATIVE", "0")
    assert native.status().startswith("native recorder: off (GRADTRACE_NATIVE=0)")


def test_a_build_without_ninja_names_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from torch.utils import cpp_extension

    def no_ninja() -> None:
        raise RuntimeError("Ninja is required to load C++ extensions")

    monkeypatch.setenv("GRADTRACE_NATIVE_DIR", str(tmp_path))
    monkeypatch.setattr(cpp_extension, "verify_ninja_availability", no_ninja)
    with pytest.raises(native.NativeBuildError, match=r"pip install ninja"):
        native.build()


@pytest.fixture(autouse=True)
def _no_hooks_left() -> Iterator[None]:
    yield
    if NATIVE is not None:
        assert NATIVE.live_hooks() == 0
