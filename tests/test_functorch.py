"""torch.func inside a record() block (issue 16, item 1). Passes of torch.func.grad, grad_and_value and vjp's
pullback (also jacrev(..., chunk_size=1), a loop of pullbacks) are recorded, read through the transform's wrappers,
and labelled with their transform; their values are checked against torch's own results, against an independent
Jacobian (torch.autograd.functional outside any transform) and against the same computation recorded with plain
autograd. Passes under vmap (vmap of grad, jacrev, jacfwd, hessian) run exactly as without gradtrace, are listed as
not recorded, and the block says so once. Either way the user's results are the same bit for bit and nothing of
gradtrace's survives into later passes."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, grad_and_value, hessian, jacrev, vjp, vmap

import tracer
from tests.fuzzing import TALLY
from tracer.record.native.loader import load as native_recorder
from tracer.record.tensors import SAMPLE_BLOCK, SAMPLE_SIZE

pytestmark = [
    pytest.mark.usefixtures("engine_restored"),
    # torch's own: hessian's forward-mode decompositions are compiled with torch.jit.script on first use
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning"),
]

RECORDED_TALLY = "torch.func passes recorded (values = torch's, = an independent Jacobian, = plain autograd's trace)"
SKIPPED_TALLY = "odd passes and tensors (same results as untraced; recorded, or noted once)"


def _loss(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return ((x @ w).tanh() - 1).pow(2).mean()


def _sin_sum(t: torch.Tensor) -> torch.Tensor:
    return t.sin().sum()


# --------------------------------------------------------------------------- passes gradtrace records


def jacobian(f: Callable[..., Any], inputs: Any, *, create_graph: bool = False) -> Any:
    """torch.autograd.functional.jacobian: plain autograd, outside any transform (an independent reference)."""
    return torch.autograd.functional.jacobian(f, inputs, create_graph=create_graph)  # type: ignore[no-untyped-call]


def _aux_loss(w: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return _loss(w, x), (x @ w).detach()


def _tanh_exp(t: torch.Tensor) -> torch.Tensor:
    return t.tanh().exp()


def _sin_times(t: torch.Tensor) -> torch.Tensor:
    return t.sin() * t


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.linspace(-1, 1, 4), torch.linspace(0, 2, 12).view(3, 4)


def _net() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    return model, torch.randn(3, 4, generator=gen), torch.tensor([0, 1, 1])


def _sample_loss(model: nn.Module, params: dict[str, torch.Tensor], sample: torch.Tensor, target: torch.Tensor) -> Any:
    return F.cross_entropy(functional_call(model, params, (sample.unsqueeze(0),)), target.unsqueeze(0))


# Each case: the user's torch.func program (it returns what the user sees), the same backward passes made with
# plain autograd outside any transform (the twin), and what each recorded pass must hold: its label, and its
# leaves' gradients as torch.func returned them (None: the transform does not return that pass's result).
Grads = dict[str, torch.Tensor]


def _grad_run() -> Any:
    w, x = _inputs()
    return grad(_loss)(w, x)


def _grad_twin() -> None:
    w, x = _inputs()
    w.requires_grad_()
    torch.autograd.grad(_loss(w, x), w)


def _grad_jacobian() -> list[Grads]:
    w, x = _inputs()
    return [{"w": jacobian(lambda t: _loss(t, x), w)}]


def _aux_run() -> Any:
    w, x = _inputs()
    return grad(_aux_loss, has_aux=True)(w, x)


def _grad_and_value_run() -> Any:
    w, x = _inputs()
    return grad_and_value(_loss)(w, x)


def _grad_of_grad_run() -> Any:
    x = torch.linspace(0, 1, 3)
    return grad(lambda x: grad(_sin_sum)(x).sum())(x)  # the inner pass starts where x is the outer level's


def _grad_of_grad_twin() -> None:
    x = torch.linspace(0, 1, 3).requires_grad_()
    (g,) = torch.autograd.grad(_sin_sum(x), x, create_graph=True)
    torch.autograd.grad(g.sum(), x)


def _grad_of_grad_jacobian() -> list[Grads]:
    x = torch.linspace(0, 1, 3)
    return [{"x": jacobian(_sin_sum, x)}, {"x": jacobian(lambda t: jacobian(_sin_sum, t, create_graph=True).sum(), x)}]


_COTANGENTS = (torch.ones(2, 3), torch.arange(6.0).view(2, 3))


def _vjp_run() -> Any:
    x = torch.linspace(-1, 1, 6).view(2, 3)
    pullback = vjp(_tanh_exp, x)[1]  # called after vjp has returned: its transform's level has ended
    return [pullback(c)[0] for c in _COTANGENTS]


def _vjp_twin() -> None:
    x = torch.linspace(-1, 1, 6).view(2, 3).requires_grad_()
    y = _tanh_exp(x)
    for c in _COTANGENTS:
        torch.autograd.grad(y, x, c, retain_graph=True)


def _vjp_jacobian() -> list[Grads]:
    x = torch.linspace(-1, 1, 6).view(2, 3)
    J = jacobian(_tanh_exp, x).reshape(6, 6)
    return [{"x": (c.reshape(-1) @ J).view(2, 3)} for c in _COTANGENTS]


def _jacrev_run() -> Any:
    x = torch.linspace(0, 1, 3)
    return jacrev(_sin_times, chunk_size=1)(x)  # a loop of pullbacks, one per row (the default batches them)


def _jacrev_twin() -> None:
    x = torch.linspace(0, 1, 3).requires_grad_()
    y = _sin_times(x)
    for row in torch.eye(3):
        torch.autograd.grad(y, x, row, retain_graph=True)


def _jacrev_jacobian() -> list[Grads]:
    J = jacobian(_sin_times, torch.linspace(0, 1, 3))
    return [{"x": J[i]} for i in range(3)]


def _per_sample_run() -> Any:
    """The per-sample-gradients recipe with a loop instead of vmap: functional_call over detached parameters."""
    model, data, targets = _net()
    params = {k: v.detach() for k, v in model.named_parameters()}
    return [grad(lambda p, s, t: _sample_loss(model, p, s, t))(params, data[i], targets[i]) for i in range(3)]


def _per_sample_twin() -> None:
    model, data, targets = _net()
    for i in range(3):
        loss = F.cross_entropy(model(data[i].unsqueeze(0)), targets[i].unsqueeze(0))
        torch.autograd.grad(loss, list(model.parameters()))


def _per_sample_jacobian() -> list[Grads]:
    model, data, targets = _net()
    names = [k for k, _ in model.named_parameters()]
    values = tuple(v.detach() for _, v in model.named_parameters())
    out = []
    for sample, target in zip(data, targets, strict=True):

        def loss(*ps: torch.Tensor, sample: torch.Tensor = sample, target: torch.Tensor = target) -> Any:
            return _sample_loss(model, dict(zip(names, ps, strict=True)), sample, target)

        grads = jacobian(loss, values)
        out.append({f"model.{n}": g for n, g in zip(names, grads, strict=True)})
    return out


@dataclasses.dataclass(frozen=True)
class Case:
    run: Callable[[], Any]
    twin: Callable[[], None]
    jacobians: Callable[[], list[Grads]]  # each pass's leaf gradients from torch.autograd.functional.jacobian
    returned: Callable[[Any], list[Grads | None]]  # ... from what torch.func returned
    labels: tuple[str, ...]


GRAD = "torch.func.grad"
PULLBACK = "torch.func.vjp's pullback"
RECORDED: dict[str, Case] = {
    "grad": Case(_grad_run, _grad_twin, _grad_jacobian, lambda g: [{"w": g}], (GRAD,)),
    "grad with has_aux": Case(_aux_run, _grad_twin, _grad_jacobian, lambda r: [{"w": r[0]}], (GRAD,)),
    "grad_and_value": Case(
        _grad_and_value_run, _grad_twin, _grad_jacobian, lambda r: [{"w": r[0]}], ("torch.func.grad_and_value",)
    ),
    "grad of grad (nested levels)": Case(
        _grad_of_grad_run,
        _grad_of_grad_twin,
        _grad_of_grad_jacobian,
        lambda g: [None, {"x": g}],
        (f"{GRAD} in {GRAD}", GRAD),
    ),
    "vjp, pullback called after the transform": Case(
        _vjp_run, _vjp_twin, _vjp_jacobian, lambda r: [{"x": g} for g in r], (PULLBACK, PULLBACK)
    ),
    "jacrev(chunk_size=1)": Case(
        _jacrev_run,
        _jacrev_twin,
        _jacrev_jacobian,
        lambda J: [{"x": J[i]} for i in range(3)],
        (f"{PULLBACK} in torch.func.jacrev",) * 3,
    ),
    "per-sample gradients, functional_call": Case(
        _per_sample_run,
        _per_sample_twin,
        _per_sample_jacobian,
        lambda per: [{f"model.{k}": g for k, g in d.items()} for d in per],
        (GRAD,) * 3,
    ),
}


def _tensor(info: Any) -> torch.Tensor:
    assert info is not None and info.values is not None, "a small gradient's values are recorded"
    return torch.tensor(info.values, dtype=torch.float64).view(info.shape)


def _same_info(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.values is not None or b.values is not None:
        return bool(torch.allclose(_tensor(a), _tensor(b), rtol=1e-6, atol=1e-7))
    return abs(a.stats.norm - b.stats.norm) <= 1e-6 * max(1.0, b.stats.norm)


@pytest.mark.parametrize("case", list(RECORDED))
def test_a_grad_pass_is_recorded_with_torchs_values(case: str, hooks: str) -> None:
    spec = RECORDED[case]
    plain = _bits(spec.run())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about: every pass is recorded
        with tracer.record() as rec:
            returned = spec.run()
    assert _bits(returned) == plain  # what the user sees, bit for bit
    assert rec.unrecorded == []
    traces = rec.traces
    assert tuple(t.label for t in traces) == spec.labels
    with tracer.record() as plain_rec:
        spec.twin()
    twins = plain_rec.traces
    assert len(twins) == len(traces)
    jacobians = spec.jacobians()
    for t, twin, by_jacobian, by_torch in zip(traces, twins, jacobians, spec.returned(returned), strict=True):
        assert t.complete and t.notes == () and t.kind == "grad" and t.options.jacobian_limit == 0
        # every step as plain autograd records the same computation (itself checked against torch elsewhere)
        assert [s.name for s in t.steps] == [s.name for s in twin.steps]
        for step, twin_step in zip(t.steps, twin.steps, strict=True):
            assert all(_same_info(a, b) for a, b in zip(step.v, twin_step.v, strict=True)), step.name
            assert all(_same_info(a, b) for a, b in zip(step.vjp, twin_step.vjp, strict=True)), step.name
            assert step.jacobian is None  # not computed under a transform (jacobian_limit 0 says so)
        # every leaf: the user's name, the gradient torch.func returned, and the independent Jacobian's
        assert set(t.leaves) == set(by_jacobian) == set(twin.leaves)
        for name, expected in by_jacobian.items():
            recorded = _tensor(t.leaves[name].grad)
            assert torch.allclose(recorded, expected.double(), rtol=1e-5, atol=1e-6), name
            if by_torch is not None:
                assert torch.equal(recorded, by_torch[name].double()), name  # the same float32 numbers
    _later_passes_are_recorded_whole()
    TALLY[RECORDED_TALLY] += 1


def test_grad_inside_ordinary_autograd_keeps_dot_grad(hooks: str) -> None:
    """torch.func.grad of a tensor that itself requires grad, then backward through the result: the transform's
    pass and the ordinary one are both recorded, and w.grad is torch's bit for bit."""

    def run() -> Any:
        w, x = _inputs()
        w.requires_grad_()
        g = grad(_loss)(w, x)
        (g**2).sum().backward()
        return g, w.grad

    plain = _bits(run())
    with tracer.record() as rec:
        traced = _bits(run())
    assert traced == plain and rec.unrecorded == []
    assert [t.label for t in rec.traces] == [GRAD, None]
    assert rec.traces[1].leaves["w"].grad_total is not None
    _later_passes_are_recorded_whole()


@pytest.mark.parametrize("capture", ["auto", "full", "stats"])
def test_large_gradients_of_a_grad_pass_are_summarised_from_their_values(capture: str, hooks: str) -> None:
    """Above the sample size: samples, kept tensors and exact statistics are read from the unwrapped values, and
    what gradtrace allocates (sample rows, cached sample positions) is plain, so later passes are whole."""

    def run() -> Any:
        x = torch.linspace(-3, 3, 5000, dtype=torch.float64)
        return grad(_sin_times_sum)(x)

    plain = run()
    with tracer.record(capture=capture) as rec:  # type: ignore[arg-type]
        traced = run()
    assert torch.equal(traced, plain) and rec.unrecorded == []
    (t,) = rec.traces
    leaf = t.leaves["x"].grad
    assert leaf is not None and leaf.stats is not None and leaf.shape == (5000,)
    assert leaf.stats.norm == pytest.approx(float(plain.norm()), rel=1e-12 if leaf.stats.norm_exact else 0.05)
    assert leaf.stats.max == pytest.approx(float(plain.max()), rel=1e-12 if capture == "stats" else 0.05)
    if capture == "full":
        assert leaf.array is not None and np.array_equal(leaf.array, plain.numpy())
    _later_passes_are_recorded_whole()


def _sin_times_sum(t: torch.Tensor) -> torch.Tensor:
    return _sin_times(t).sum()


def test_on_pass_gets_the_transforms_pass_as_it_ends(hooks: str) -> None:
    """`gradtrace run` writes each pass from on_pass, which runs inside the transform: the Trace it gets is built
    from plain tensors, and later passes are whole."""
    got: list[tracer.Trace] = []
    levels: list[int | None] = []

    def on_pass(trace: tracer.Trace) -> None:
        got.append(trace)
        levels.append(torch._C._functorch.maybe_current_level())

    with tracer.record(on_pass=on_pass, label="script.py") as rec:
        g = _grad_run()
    assert levels == [1]  # handed over as the pass ended, inside the transform
    (t,) = got
    assert t.label == f"script.py · {GRAD}" and rec.traces[0].label == t.label
    assert torch.equal(_tensor(t.leaves["w"].grad), g.double())
    _later_passes_are_recorded_whole()


def test_the_trace_says_torch_func_in_its_title(hooks: str) -> None:
    with tracer.record(label="cell 3") as rec:
        _grad_run()
    (t,) = rec.traces
    assert t.label == f"cell 3 · {GRAD}"
    assert f"cell 3 · {GRAD} · " in t.to_dot()  # the picture's title


# --------------------------------------------------------------------------- passes gradtrace leaves unrecorded


def _vmapped_per_sample() -> Any:
    """The per-sample-gradients recipe as the tutorial writes it."""
    model, data, targets = _net()
    params = {k: v.detach() for k, v in model.named_parameters()}
    return vmap(grad(lambda p, s, t: _sample_loss(model, p, s, t)), in_dims=(None, 0, 0))(params, data, targets)


# Each program returns what the user sees; it must be the same bit for bit with and without a record() block.
PROGRAMS: dict[str, Callable[[], Any]] = {
    "vmap of grad (per-sample gradients)": lambda: vmap(grad(_loss), in_dims=(None, 0))(
        torch.linspace(-1, 1, 4), torch.linspace(0, 2, 20).view(5, 1, 4)
    ),
    "vmap of grad over functional_call": _vmapped_per_sample,
    "jacrev": lambda: jacrev(lambda x: x.sin() * x)(torch.linspace(0, 1, 3)),
    "hessian": lambda: hessian(_sin_sum)(torch.linspace(0, 1, 3)),
}


def _bits(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return (value.dtype, tuple(value.shape), value.contiguous().view(-1).view(torch.uint8).tolist())
    if isinstance(value, tuple | list):
        return [_bits(v) for v in value]
    if isinstance(value, dict):
        return {k: _bits(v) for k, v in value.items()}
    return value


def _func_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, tracer.GradtraceWarning)]


@pytest.mark.parametrize("program", list(PROGRAMS))
def test_a_transform_runs_as_without_gradtrace_and_is_noted_once(program: str, hooks: str) -> None:
    run = PROGRAMS[program]
    plain = _bits(run())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with tracer.record() as rec:
            traced = _bits(run())
            traced_again = _bits(run())  # the same block: still one warning
    assert traced == plain and traced_again == plain
    assert rec.traces == []
    (said,) = _func_warnings(caught)
    assert "did not record a backward pass inside a torch.func transform" in said
    note = rec.unrecorded[0]
    assert len(rec.unrecorded) in (2, 4, 6) and set(rec.unrecorded) == {note}  # one line per pass, the same reason
    assert note.startswith("not recorded, inside a torch.func transform that batches or carries tangents (vmap")
    assert "ran exactly as without gradtrace" in note
    _later_passes_are_recorded_whole()
    TALLY[SKIPPED_TALLY] += 1


def _later_passes_are_recorded_whole() -> None:
    """Nothing of the transform survives in gradtrace (e.g. a wrapper in the native recorder's pool of blocks)."""
    for n in (3, 5000):  # values, and samples taken into the pool's blocks
        x = torch.linspace(-1, 1, n, requires_grad=True)
        t = tracer.trace((x * 2).sin().sum())
        assert t.complete and t.notes == ()
        assert t.leaves["x"].grad is not None and t.leaves["x"].grad.stats is not None
        assert torch.equal(x.grad, 2 * (2 * x.detach()).cos())


def test_ordinary_passes_in_the_same_block_are_recorded(hooks: str) -> None:
    w = torch.linspace(-1, 1, 4, requires_grad=True)
    x = torch.linspace(0, 2, 12).view(3, 4)
    with pytest.warns(tracer.GradtraceWarning, match="torch.func"), tracer.record() as rec:
        per_sample = vmap(grad(_loss), in_dims=(None, 0))(w.detach(), x.view(3, 1, 4))
        g = grad(_loss)(w.detach(), x)
        _loss(w, x).backward()
    grad_pass, t = rec.traces
    assert grad_pass.label == GRAD and t.label is None
    assert t.complete and t.notes == () and t.leaves["w"].grad is not None
    assert torch.allclose(w.grad, g) and torch.allclose(per_sample.mean(0), g)
    assert len(rec.unrecorded) == 1 and rec.unrecorded[0].startswith("not recorded, inside a torch.func transform")


def test_warnings_as_errors_do_not_reach_the_users_code(hooks: str) -> None:
    """The one warning must never turn into an exception in the user's program; rec.unrecorded still says it."""
    run = PROGRAMS["vmap of grad (per-sample gradients)"]
    plain = _bits(run())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with tracer.record() as rec:
            assert _bits(run()) == plain
    assert len(rec.unrecorded) == 1


def test_batched_gradients_are_listed_as_unrecorded(hooks: str) -> None:
    """torch.autograd.grad(is_grads_batched=True): a vmapped pass, listed in rec.unrecorded (tracer.jacobian makes
    one, and records its rows as a loop instead, so no warning)."""
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = x.sin() * 3
    rows = torch.eye(2)
    (plain,) = torch.autograd.grad(y, x, rows, retain_graph=True, is_grads_batched=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with tracer.record() as rec:
            (traced,) = torch.autograd.grad(y, x, rows, is_grads_batched=True)
    assert torch.equal(traced, plain) and rec.traces == []
    assert rec.unrecorded == [rec.unrecorded[0]] and "is_grads_batched=True" in rec.unrecorded[0]
    TALLY[SKIPPED_TALLY] += 1


def test_the_native_pool_never_keeps_a_transforms_tensor() -> None:
    """Defence in depth below the skip: the native table's blocks and sample positions outlive their pass (a
    process-wide pool and cache), so one allocated while a transform is active must still be a plain tensor."""
    native = native_recorder()
    if native is None:
        pytest.skip("the native recorder is not built (python -m tracer.native)")
    size = 100_003  # a shape no other test samples: its sample positions are made here, under the transform

    plain = [torch.ones(size, dtype=dtype) for dtype in (torch.float32, torch.float64)]  # made outside

    def inside(t: torch.Tensor) -> torch.Tensor:
        table = native.Pass(64, SAMPLE_SIZE, SAMPLE_BLOCK, False, 0)
        for tensor in plain:  # sampled into blocks, at positions made now
            table.add(tensor, False, False, False, False, False)
        table.export_entries()
        table.clear()  # its blocks go to the pool
        return t.sin().sum()

    grad(inside)(torch.ones(3))
    pooled, _ = native.pooled_blocks()
    assert pooled > 0
    for dtype in (torch.float32, torch.float64):
        x = torch.ones(size, dtype=dtype, requires_grad=True)
        t = tracer.trace((x * 2).sum())
        assert t.complete and t.notes == ()
        step = t.steps[0]
        assert step.vjp[0] is not None and step.vjp[0].stats is not None and step.vjp[0].stats.mean == 1.0


def test_a_parameter_keeps_its_module_path_after_a_loop_over_the_parameters(hooks: str) -> None:
    """The per-sample-gradients tutorial checks each parameter in a loop (`for name, p in
    model.named_parameters()`) between its backward passes: the parameter `p` still holds is named by its module
    path in every pass, as in the first, not `p`."""
    model, data, targets = _net()
    with tracer.record() as rec:
        for i in range(2):
            model.zero_grad()
            F.cross_entropy(model(data[i : i + 1]), targets[i : i + 1]).backward()
            for _name, p in model.named_parameters():
                assert p.grad is not None
    names = {f"model.{name}" for name, _ in model.named_parameters()}
    assert [set(t.leaves) for t in rec.traces] == [names, names]
