"""Independent checks of a recorded trace: recompute vᵀJ from the recorded numbers, and leaves from torch."""

from __future__ import annotations

from collections.abc import Callable

import torch

from tracer import Trace


def flat(
    infos: tuple,
) -> torch.Tensor:
    parts = [torch.tensor(i.values, dtype=torch.float64).reshape(-1) for i in infos if i is not None]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)


def assert_steps_consistent(trace: Trace, *, require_jacobian: bool = True) -> int:
    """Every executed node's recorded vᵀJ equals recorded v times recorded J; returns how many were checked."""
    checked = 0
    for step in trace.steps:
        if step.name == "AccumulateGrad":
            continue
        if step.jacobian is None:
            assert not require_jacobian, f"step {step.id} {step.name}: no Jacobian recorded ({step.note})"
            continue
        assert step.check is not None and step.check.ok, f"step {step.id} {step.name}: {step.check}"
        v = flat(step.v)
        sent = flat(step.vjp)
        matrix = torch.tensor(step.jacobian.matrix, dtype=torch.float64)
        assert matrix.shape == (v.numel(), sent.numel()), (step.name, matrix.shape, v.shape, sent.shape)
        expected = v @ matrix
        assert torch.allclose(expected, sent, rtol=1e-5, atol=1e-6), (step.id, step.name, expected, sent)
        checked += 1
    return checked


def vjp_by_full_jacobian(
    forward: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    leaves: dict[str, torch.Tensor],
    seed: torch.Tensor | None,
) -> dict[str, torch.Tensor]:
    """vᵀJ for each leaf from torch.autograd.functional.jacobian of the whole function (no backward hooks)."""
    names = list(leaves)
    values = tuple(leaves[n].detach() for n in names)

    def f(*xs: torch.Tensor) -> torch.Tensor:
        return forward(dict(zip(names, xs, strict=True)))

    out = f(*values)
    v = torch.ones_like(out) if seed is None else seed.to(out.dtype)
    jac = torch.autograd.functional.jacobian(f, values)
    result = {}
    for name, value, j in zip(names, values, jac, strict=True):
        matrix = j.reshape(out.numel(), value.numel()).double()
        result[name] = (v.reshape(-1).double() @ matrix).reshape(value.shape)
    return result
