"""Health flags pinned to the right step, norms equal to torch's, wrong custom backwards caught, the SVG chart."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
import torch

import tracer
from tests.cases import CASES, Case
from tests.checks import flat
from tests.models import record_mlp, record_transformer
from tracer.record.numeric_reference import NO_REFERENCE

SVG = "{http://www.w3.org/2000/svg}"


class Square(torch.autograd.Function):
    """x**2 with the right backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return 2 * g * x


class WrongSquare(Square):
    """3·g·x instead of 2·g·x: still linear in g, so the node agrees with its own one-hot Jacobian."""

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return 3 * g * x


class NonlinearSquare(Square):
    """g·g·x: not even linear in g; the one-hot check alone catches it."""

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return 2 * g * g * x + g


def _square_graph(fn: type[torch.autograd.Function]) -> tuple[tracer.Trace, torch.Tensor, torch.Tensor]:
    """(fn(x * w) * 2).sum(): steps 1 SumBackward0, 2 MulBackward0, 3 fn's node, 4 MulBackward0, 5-6 leaves."""
    x = torch.tensor([1.0, 2.0, -0.5], requires_grad=True)
    w = torch.tensor([0.5, -1.5, 2.0], requires_grad=True)
    trace = tracer.trace((fn.apply(x * w) * 2).sum())
    return trace, x, w


def test_wrong_linear_backward_is_flagged_at_its_step() -> None:
    trace, _, _ = _square_graph(WrongSquare)
    step = trace.steps[2]
    assert (step.id, step.name) == (3, "WrongSquareBackward")
    # its own one-hot Jacobian agrees with it: only the forward can tell
    assert step.jacobian is not None
    matrix = torch.tensor(step.jacobian.matrix, dtype=torch.float64)
    assert torch.allclose(flat(step.v) @ matrix, flat(step.vjp))
    assert step.check is not None and step.check.method == "numeric" and not step.check.ok
    # v = 2 everywhere, x*w = (0.5, -3, -1): the backward sends 3·2·xw, the truth is 2·2·xw; max gap 2·3 = 6
    assert step.check.max_error == pytest.approx(6.0, rel=1e-6)
    wrong = [f for f in tracer.health(trace).flags if f.kind == "wrong-backward"]
    assert [(f.node, f.severity) for f in wrong] == [(3, "error")]
    assert "step 3 WrongSquareBackward" in wrong[0].message
    assert "central differences of the forward" in wrong[0].message


def test_right_backward_passes_the_numeric_check() -> None:
    trace, x, w = _square_graph(Square)
    step = trace.steps[2]
    assert step.check is not None and step.check.method == "numeric" and step.check.ok
    assert step.check.max_error < 1e-6
    assert step.note is None
    assert tracer.health(trace).ok
    assert torch.allclose(x.grad, 4 * x.detach() * w.detach() ** 2)


def test_nonlinear_backward_is_caught_by_the_one_hot_check() -> None:
    trace, _, _ = _square_graph(NonlinearSquare)
    step = trace.steps[2]
    assert step.check is not None and step.check.method == "one-hot" and not step.check.ok
    assert [f.node for f in tracer.health(trace).flags if f.kind == "wrong-backward"] == [3]


def test_wrong_backward_in_float64_and_deeper_in_the_graph() -> None:
    x = torch.tensor([0.3, -0.7], dtype=torch.float64, requires_grad=True)
    y = (WrongSquare.apply(x.sin()).exp() * 3).sum()
    trace = tracer.trace(y)
    names = [s.name for s in trace.steps]
    expected = names.index("WrongSquareBackward") + 1
    wrong = [f.node for f in tracer.health(trace).flags if f.kind == "wrong-backward"]
    assert wrong == [expected] == [4]  # sum, mul, exp, then the custom node


class SavesAttribute(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.x = x.detach()
        return x * x

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return 3 * g * ctx.x


class SavesInReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(w, x)
        return x * w

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        w, x = ctx.saved_tensors
        return g * w, g * x


class RandomForward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return x * torch.rand_like(x)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return g


class Kink(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return x.abs()

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return g * x.sign()


class TakesAScalar(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, k: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return x * k

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return g * 3, None


_calls = {"n": 0}


class FailsTheSecondTime(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        _calls["n"] += 1
        if _calls["n"] > 1:
            raise RuntimeError("called twice")
        ctx.save_for_backward(x)
        return x * 2

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return g * 2


@pytest.mark.parametrize(
    ("build", "why"),
    [
        (lambda x: SavesAttribute.apply(x), "ctx.saved_tensors holds 0 tensor(s) and the forward took 1"),
        (lambda x: SavesInReverse.apply(x, x * 3), "saved tensor 0 is not the forward's input 0"),
        (lambda x: RandomForward.apply(x), "the forward is random"),
        (lambda x: Kink.apply(x * 0), "not differentiable at this point"),
        (lambda x: TakesAScalar.apply(x, 2.0), "non-tensor arguments"),
        (lambda x: FailsTheSecondTime.apply(x), "re-running the forward raised RuntimeError: called twice"),
    ],
    ids=["attribute", "reversed", "random", "kink", "scalar-arg", "raises"],
)
def test_no_independent_reference_is_said_clearly(build, why: str) -> None:  # type: ignore[no-untyped-def]
    _calls["n"] = 0
    x = torch.tensor([1.0, -2.0], requires_grad=True)
    y = build(x).sum()
    expected = torch.autograd.grad(y, x, retain_graph=True)[0]
    state = torch.get_rng_state()
    trace = tracer.trace(y)
    assert torch.equal(torch.get_rng_state(), state)  # re-running user code did not move the random stream
    assert torch.equal(x.grad, expected)  # nor change any result
    step = next(s for s in trace.steps if s.name.endswith("Backward") and not s.name.endswith("Backward0"))
    assert step.note is not None and step.note.startswith(NO_REFERENCE) and why in step.note
    assert step.check is not None and step.check.method == "one-hot"
    flags = [f for f in tracer.health(trace).flags if f.kind == "unverified"]
    assert [(f.node, f.severity) for f in flags] == [(step.id, "info")]


def test_random_stream_is_untouched_by_the_numeric_check() -> None:
    torch.manual_seed(3)
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = Square.apply(x).sum()
    tracer.trace(y)
    after_trace = torch.rand(3)
    torch.manual_seed(3)
    Square.apply(x).sum().backward()
    assert torch.equal(torch.rand(3), after_trace)


def test_nan_is_flagged_where_it_starts() -> None:
    x = torch.tensor([0.0, 1.0], requires_grad=True)
    trace = tracer.trace((x.sqrt() * 0).sum())  # sqrt'(0) = inf, times the 0 arriving: NaN
    h = tracer.health(trace)
    nonfinite = [(f.node, f.leaf) for f in h.flags if f.kind == "nonfinite"]
    assert nonfinite == [(3, None), (4, "x")]  # step 3 SqrtBackward0, then the leaf
    assert trace.steps[2].name == "SqrtBackward0"
    assert not any(f.kind == "wrong-backward" for f in h.flags)  # NaN on both sides is not a wrong backward
    assert torch.isnan(x.grad[0])


def test_nan_missed_by_a_sample_is_not_pinned_on_the_wrong_step() -> None:
    """h = 2x; y = sum(h * m) with one NaN in m: step 2 (h * m) starts it. The default capture samples step 2's
    100,000-element vjp and can miss the NaN; the leaf's exact norm then shows it one step later. The flag must
    say it was first seen there, not that it started there; capture='stats' pins it on step 2."""
    x = torch.ones(100_000, requires_grad=True)
    m = torch.ones(100_000)
    m[12_345] = float("nan")
    trace = tracer.trace((x * 2 * m).sum())
    sent = trace.steps[1].vjp[0]
    assert sent is not None and sent.stats is not None and not sent.stats.exact
    assert sent.stats.nan == 0, "this test needs the sample to miss the NaN"
    flag = next(f for f in tracer.health(trace).flags if f.kind == "nonfinite" and f.leaf is None)
    assert flag.node == 3 and flag.estimated
    assert "first step that shows NaN/Inf" in flag.message and "capture='stats'" in flag.message
    assert "the problem starts here" not in flag.message
    leaf_flag = next(f for f in tracer.health(trace).flags if f.leaf == "x")
    assert "a norm of nan" in leaf_flag.message  # the leaf's norm is exact, its counts come from a sample

    x.grad = None
    exact = tracer.trace((x * 2 * m).sum(), capture="stats")
    flags = [f for f in tracer.health(exact).flags if f.kind == "nonfinite" and f.leaf is None]
    assert [(f.node, f.estimated) for f in flags] == [(2, False)]
    assert "the problem starts here" in flags[0].message and "1 NaN, 0 Inf" in flags[0].message


def test_overflowing_sum_is_flagged_at_the_accumulation() -> None:
    x = torch.tensor([1.0], requires_grad=True)
    a = x * 1
    trace = tracer.trace((a * 3e38).sum() + (a * 3e38).sum())
    flags = [f for f in tracer.health(trace).flags if f.kind == "nonfinite" and f.leaf is None]
    node = trace.node(flags[0].node)  # type: ignore[arg-type]
    assert len(flags) == 1 and "overflowed" in flags[0].message
    assert node.name == "MulBackward0" and node.edges[0].target == trace.leaves["x"].node
    assert torch.isinf(x.grad).all()


@pytest.mark.parametrize(("factor", "kind"), [(0.05, "vanishing"), (20.0, "exploding")])
def test_vanishing_and_exploding_onset(factor: float, kind: str) -> None:
    """y = x·f¹⁰: step 1 sum, steps 2..11 the muls, v at step k is f^(k-2); it crosses 1e-6 / 1e6 at step 7."""
    x = torch.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(10):
        y = y * factor
    h = tracer.health(tracer.trace(y.sum()))
    flags = [f for f in h.flags if f.kind == kind]
    assert [(f.node, f.leaf) for f in flags] == [(7, None), (12, "x")]
    assert flags[0].value == pytest.approx(factor**5, rel=1e-5)
    assert flags[1].value == pytest.approx(float(x.grad), rel=1e-5)
    assert all(f.severity == "warning" for f in flags)
    # thresholds are parameters
    loose = tracer.health(tracer.trace((x * factor**10).sum()), vanishing=1e-20, exploding=1e20)
    assert not any(f.kind == kind for f in loose.flags)


def test_dead_relu_gives_zero_flags() -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    h = tracer.health(tracer.trace(torch.relu(x - 10).sum()))
    assert [(f.kind, f.severity, f.node, f.leaf) for f in h.flags] == [
        ("zero", "warning", 4, "x"),
        ("zero", "info", 2, None),
    ]
    assert not h.ok


def test_none_gradient_is_flagged() -> None:
    class DropsSecond(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
            return a * b

        @staticmethod
        def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
            return g, None

    a = torch.tensor([1.0, 2.0], requires_grad=True)
    b = torch.tensor([3.0, 4.0], requires_grad=True)
    h = tracer.health(tracer.trace(DropsSecond.apply(a, b).sum()))
    none = [(f.severity, f.node, f.leaf) for f in h.flags if f.kind == "none"]
    assert none == [("warning", 2, None), ("warning", 4, "b")]


def test_pruned_by_inputs_is_only_info() -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    w = torch.tensor([3.0, 4.0], requires_grad=True)
    with tracer.record() as rec:
        torch.autograd.grad((x * w).sum(), [x])
    h = tracer.health(rec.traces[0])
    assert h.ok and {f.severity for f in h.flags} == {"info"}


def test_bad_thresholds() -> None:
    x = torch.tensor([1.0], requires_grad=True)
    trace = tracer.trace(x * 2)
    with pytest.raises(ValueError, match=r"vanishing must be a ratio between 0 and 1, got 2"):
        tracer.health(trace, vanishing=2)
    with pytest.raises(ValueError, match=r"exploding must be a ratio above 1, got 0.5"):
        tracer.health(trace, exploding=0.5)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_tutorial_cases_have_no_errors_and_exact_leaf_norms(case: Case) -> None:
    leaves = case.leaves()
    y = case.forward(leaves)
    h = tracer.health(tracer.trace(y, case.seed(y), names=leaves))
    assert not h.by_severity("error")
    assert len(h.profile) == len(h.profile) and [p.step for p in h.profile] == list(range(1, len(h.profile) + 1))
    for name, norm in h.leaf_norms:
        assert norm == pytest.approx(float(leaves[name].grad.double().norm()), rel=1e-12, abs=1e-12)


def test_mlp_health_and_norms() -> None:
    r = record_mlp()
    h = tracer.health(r.trace)
    assert h.ok and h.flags == ()
    assert h.seed_norm == 1.0
    for name, norm in h.leaf_norms:  # small gradients keep their values: the norm is exact
        assert norm == pytest.approx(float(r.grads[name].double().norm()), rel=1e-12)
    assert [p.step for p in h.profile] == [s.id for s in r.trace.steps]
    # every node of this small MLP has a Jacobian, and every vjp equals v·J
    for s in r.trace.steps:
        if s.name != "AccumulateGrad":
            assert s.check is not None and s.check.ok, (s.id, s.name, s.note)


def test_transformer_health_and_estimates() -> None:
    # a sequence of 100: the [1, 100, 32] feed-forward gradients exceed the 1,024 elements read whole
    r = record_transformer(sequence=100)
    h = tracer.health(r.trace)
    assert not h.by_severity("error")
    for name, norm in h.leaf_norms:  # the recorder takes float32 norms in float32
        assert norm == pytest.approx(float(r.grads[name].double().norm()), rel=1e-6)
    assert any(p.estimated for p in h.profile)  # large intermediates are sampled in the default capture
    exact = tracer.health(record_transformer(sequence=100, capture="stats").trace)
    assert not any(p.estimated for p in exact.profile)
    for p, q in zip(h.profile, exact.profile, strict=True):
        if p.norm and not p.estimated:
            assert p.norm == pytest.approx(q.norm, rel=1e-6)


def test_chart_is_parsable_svg_with_one_marker_per_step() -> None:
    x = torch.tensor([0.0, 1.0], requires_grad=True)
    h = tracer.health(tracer.trace((x.sqrt() * 0 + x * 2).sum()))
    svg = h.chart()
    assert svg == tracer.health(tracer.trace((x.sqrt() * 0 + x * 2).sum())).chart()  # deterministic
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    markers = root.findall(f"{SVG}circle") + root.findall(f"{SVG}rect")[1:]  # first rect: the background
    assert len(markers) == len(h.profile)
    tips = [m.find(f"{SVG}title").text for m in markers]  # type: ignore[union-attr]
    assert any(t.startswith("step 1 SumBackward0: ‖v‖ = 1") for t in tips)  # type: ignore[union-attr]
    leaf = next(m for m in root.findall(f"{SVG}rect")[1:])
    assert "→ x" in leaf.find(f"{SVG}title").text  # type: ignore[union-attr,operator]
    assert leaf.get("stroke") == "#c62828"  # x's gradient is NaN: an error


def test_long_graph_chart_stays_bounded() -> None:
    x = torch.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(2000):
        y = y * 1.001
    h = tracer.health(tracer.trace(y.sum(), jacobian_limit=0))
    root = ET.fromstring(h.chart())
    assert int(root.get("width")) <= 1200 + 100  # type: ignore[arg-type]
    labels = [t for t in root.findall(f"{SVG}text") if t.get("text-anchor") == "middle" and (t.text or "").isdigit()]
    assert 2 <= len(labels) <= 22


def test_str_lists_flags_by_severity() -> None:
    trace, _, _ = _square_graph(WrongSquare)
    text = str(tracer.health(trace))
    assert text.startswith("health: 1 error")
    assert "error    wrong-backward  node 3" in text
