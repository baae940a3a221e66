"""torch.func inside a record() block (issue 16, item 1): every transform runs exactly as without gradtrace, its
passes are not recorded, the block says so once, and nothing of gradtrace's survives into later passes."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.func import grad, hessian, jacrev, vjp, vmap

import tracer
from tests.fuzzing import TALLY
from tracer.record.native.loader import load as native_recorder
from tracer.record.tensors import SAMPLE_BLOCK, SAMPLE_SIZE

pytestmark = [
    pytest.mark.usefixtures("engine_restored"),
    # torch's own: hessian's forward-mode decompositions are compiled with torch.jit.script on first use
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning"),
]


def _loss(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return ((x @ w).tanh() - 1).pow(2).mean()


def _sin_sum(t: torch.Tensor) -> torch.Tensor:
    return t.sin().sum()


# Each program returns what the user sees; it must be the same bit for bit with and without a record() block.
PROGRAMS: dict[str, Callable[[], Any]] = {
    "grad": lambda: grad(_loss)(torch.linspace(-1, 1, 4), torch.linspace(0, 2, 12).view(3, 4)),
    "grad of grad": lambda: grad(lambda t: grad(_sin_sum)(t).sum())(torch.linspace(0, 1, 3)),
    "vjp": lambda: vjp(torch.sin, torch.linspace(0, 1, 3))[1](torch.ones(3)),
    "vjp pullback twice": lambda: (lambda pull: (pull(torch.ones(2, 3)), pull(torch.arange(6.0).view(2, 3))))(
        vjp(lambda x: x.tanh().exp(), torch.linspace(-1, 1, 6).view(2, 3))[1]
    ),
    "vmap of grad (per-sample gradients)": lambda: vmap(grad(_loss), in_dims=(None, 0))(
        torch.linspace(-1, 1, 4), torch.linspace(0, 2, 20).view(5, 1, 4)
    ),
    "jacrev": lambda: jacrev(lambda x: x.sin() * x)(torch.linspace(0, 1, 3)),
    "hessian": lambda: hessian(_sin_sum)(torch.linspace(0, 1, 3)),
}


def _bits(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return (value.dtype, tuple(value.shape), value.contiguous().view(-1).view(torch.uint8).tolist())
    if isinstance(value, tuple | list):
        return [_bits(v) for v in value]
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
    assert note.startswith("not recorded, inside a torch.func transform")
    assert "ran exactly as without gradtrace" in note
    _later_passes_are_recorded_whole()
    TALLY["odd passes and tensors (same results as untraced; recorded, or noted once)"] += 1


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
        g = grad(_loss)(w.detach(), x)
        _loss(w, x).backward()
    (t,) = rec.traces
    assert t.complete and t.notes == () and t.leaves["w"].grad is not None
    assert torch.allclose(w.grad, g)
    assert len(rec.unrecorded) == 1 and rec.unrecorded[0].startswith("not recorded, inside a torch.func transform")


def test_warnings_as_errors_do_not_reach_the_users_code(hooks: str) -> None:
    """The one warning must never turn into an exception in the user's program; rec.unrecorded still says it."""
    plain = _bits(PROGRAMS["vjp"]())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with tracer.record() as rec:
            assert _bits(PROGRAMS["vjp"]()) == plain
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
    TALLY["odd passes and tensors (same results as untraced; recorded, or noted once)"] += 1


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
