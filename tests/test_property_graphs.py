"""Random small graphs and random seeds v: tracing leaves every gradient bit-identical, every recorded step is
consistent with its recorded Jacobian, gradients flow along the recorded edges, and every leaf's gradient
equals vᵀJ from torch.autograd.functional.jacobian of the whole program."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import tracer
from tests.checks import assert_steps_consistent
from tests.fuzzing import TALLY, fuzz_settings
from tests.random_graphs import Program, programs

CAPTURES = ["auto", "stats", "full"]


def same_bits(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    """Equal shape, dtype and bytes (so -0.0 differs from 0.0 and NaN payloads count), or both None."""
    if a is None or b is None:
        return a is b
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return torch.equal(_bytes(a), _bytes(b))


def _bytes(t: torch.Tensor) -> torch.Tensor:
    return t.detach().reshape(-1).contiguous().view(torch.uint8)


def reference_vjp(program: Program, v: torch.Tensor | None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per leaf: vᵀJ from the program's full Jacobian (float64), and |v|ᵀ|J|, the size of the terms summed."""
    values = {n: x.detach() for n, x in program.leaves().items()}
    names = list(values)

    def f(*xs: torch.Tensor) -> torch.Tensor:
        return program.forward(dict(zip(names, xs, strict=True)))

    out = f(*values.values())
    seed = (torch.ones_like(out) if v is None else v).reshape(-1).double()
    if out.numel() == 0:  # nothing flows back from an empty output (and jacobian() cannot stack no rows)
        return {n: (torch.zeros(x.shape, dtype=torch.float64),) * 2 for n, x in values.items()}
    jac = torch.autograd.functional.jacobian(f, tuple(values.values()))
    result = {}
    for name, j in zip(names, jac, strict=True):
        matrix = j.reshape(out.numel(), values[name].numel()).double()
        shape = values[name].shape
        result[name] = ((seed @ matrix).reshape(shape), (seed.abs() @ matrix.abs()).reshape(shape))
    return result


def assert_flow_conserved(trace: tracer.Trace) -> int:
    """What arrives at each executed node's input slot is the sum of the vᵀJ sent along its recorded edges
    (plus the seed entering there): the edges connect the right nodes. Returns how many slots were checked."""
    arriving: dict[tuple[int, int], list[torch.Tensor]] = {}
    for source, _k, edge, grad in trace.edges():
        if edge.target is not None and grad is not None and source.executed:
            arriving.setdefault((edge.target, edge.input_nr), []).append(grad.as_tensor().double())
    for s in trace.seeds:
        if s.target is not None and s.v is not None:
            arriving.setdefault((s.target, s.input_nr), []).append(s.v.as_tensor().double())
    checked = 0
    for step in trace.steps:
        for nr, got in enumerate(step.v):
            parts = arriving.get((step.id, nr))
            if got is None:
                assert not parts, f"step {step.id} {step.name}: edges sent a gradient that did not arrive"
                continue
            assert parts, f"step {step.id} {step.name}: a gradient arrived along no recorded edge"
            total = torch.stack(parts).sum(0).reshape(got.shape)
            scale = torch.stack(parts).abs().sum(0).reshape(got.shape)
            tol = 1e-5 * (1 + scale) if got.dtype == "float32" else 1e-12 * (1 + scale)
            arrived = got.as_tensor().double()
            # equal non-finite sums (inf + 1 = inf) and NaN on both sides count as agreeing
            agree = ((total - arrived).abs() <= tol) | (total == arrived) | (total.isnan() & arrived.isnan())
            assert bool(agree.all()), (step.id, step.name, total, got.values)
            checked += 1
    return checked


def run_untraced(program: Program, mode: str) -> tuple[dict[str, torch.Tensor | None], BaseException | None]:
    leaves = program.leaves()
    out = program.forward(leaves)
    v = program.seed(out)
    try:
        if mode == "backward":
            out.backward(v)
            return {n: x.grad for n, x in leaves.items()}, None
        grads = torch.autograd.grad(out, list(leaves.values()), v, allow_unused=True)
        return dict(zip(leaves, grads, strict=True)), None
    except RuntimeError as exc:
        return {}, exc


@fuzz_settings(120)
@given(programs(), st.sampled_from(CAPTURES), st.sampled_from(["backward", "grad"]))
def test_random_graph(program: Program, capture: str, mode: str) -> None:
    plain, plain_error = run_untraced(program, mode)

    leaves = program.leaves()
    out = program.forward(leaves)
    v = program.seed(out)
    if plain_error is not None:  # an in-place write over a saved tensor: the same error, the pass kept
        with pytest.raises(RuntimeError) as info:
            tracer.trace(out, v, names=leaves, capture=capture)  # type: ignore[arg-type]
        assert str(info.value) == str(plain_error)
        partial = info.value.partial_trace  # type: ignore[attr-defined]
        assert not partial.complete and tracer.load(partial.to_json()).to_json() == partial.to_json()
        TALLY["random graphs whose backward raised (same error with tracing)"] += 1
        return

    if mode == "backward":
        trace = tracer.trace(out, v, names=leaves, capture=capture)  # type: ignore[arg-type]
        traced = {n: x.grad for n, x in leaves.items()}
    else:
        with tracer.record(names=leaves, capture=capture) as rec:  # type: ignore[arg-type]
            grads = torch.autograd.grad(out, list(leaves.values()), v, allow_unused=True)
        (trace,) = rec.traces
        traced = dict(zip(leaves, grads, strict=True))
        assert all(x.grad is None for x in leaves.values()), "autograd.grad must not touch .grad"

    # 0. the loader accepts everything the recorder writes (its consistency checks have no false alarms)
    text = trace.to_json()
    assert tracer.load(text).to_json() == text

    # 1. tracing changed no bit
    for name in leaves:
        assert same_bits(traced[name], plain[name]), f"{name}: tracing changed the gradient"
    assert trace.complete and trace.error is None and trace.notes == ()

    # 2. the recorded seed and leaf gradients are exactly torch's
    used = torch.ones_like(out) if v is None else v
    assert trace.seeds[0].v is not None and same_bits(trace.seeds[0].v.as_tensor(), used.detach())
    for name, grad in traced.items():
        leaf = trace.leaves[name]
        if grad is None:
            assert leaf.grad is None and leaf.reason, name
        else:
            assert leaf.grad is not None and same_bits(leaf.grad.as_tensor(), grad), name

    # 3. every step: recorded vᵀJ = recorded v · recorded J, and the edges carry what arrives
    TALLY["steps checked against their recorded Jacobian"] += assert_steps_consistent(trace, require_jacobian=False)
    TALLY["input slots checked: arriving v = sum of vᵀJ along edges"] += assert_flow_conserved(trace)
    for step in trace.steps:
        sizes_fit = all(t is None or 0 < t.numel <= 64 for t in (*step.v, *step.vjp))
        has_flow = any(t is not None for t in step.v) and any(t is not None for t in step.vjp)
        if step.name != "AccumulateGrad" and sizes_fit and has_flow:
            assert step.jacobian is not None, f"step {step.id} {step.name}: no Jacobian ({step.note})"

    # 4. every leaf: the gradient is vᵀJ of the whole program's Jacobian
    reference = reference_vjp(program, v)
    eps = torch.finfo(program.dtype).eps
    for name, (expected, scale) in reference.items():
        got = traced[name]
        got64 = torch.zeros_like(expected) if got is None else got.double()
        if not (torch.isfinite(expected).all() and torch.isfinite(got64).all()):
            TALLY["random graphs with non-finite gradients (Jacobian comparison skipped)"] += 1
            continue
        tolerance = 1e4 * eps * (1 + scale)
        assert bool(((got64 - expected).abs() <= tolerance).all()), (name, got64, expected)
    TALLY["random graphs traced (bit-identical, checked against the full Jacobian)"] += 1
