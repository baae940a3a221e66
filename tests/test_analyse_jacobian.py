"""tracer.jacobian: one one-hot pass per output element, equal to torch.autograd.functional.jacobian."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

import tracer
from tests.cases import CONST_M

F64 = torch.float64


class NumpySquare(torch.autograd.Function):
    """x**2 through numpy: vmap cannot batch it, so tracer.jacobian must fall back to the loop."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return torch.from_numpy(x.detach().numpy() ** 2)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return torch.from_numpy(2 * g.numpy() * x.detach().numpy())


def _linear_layer() -> Callable[[torch.Tensor], torch.Tensor]:
    torch.manual_seed(1)
    layer = torch.nn.Linear(3, 2).double()
    return lambda x: torch.tanh(layer(x))


def _mlp() -> Callable[[torch.Tensor], torch.Tensor]:
    """The analysis tests' two-layer MLP (Linear, Tanh, Linear): its [2, 2] outputs by its [2, 3] inputs."""
    from tests.models import mlp

    model, _, _ = mlp()
    return model


FUNCTIONS: list[tuple[str, Callable[..., object], tuple[torch.Tensor, ...]]] = [
    ("mm_tutorial_002", lambda x: torch.mm(x, CONST_M), (torch.tensor([[10.0, 5.0]]),)),
    (
        "stack_004_f64",
        lambda x: torch.stack([-(x**3), 5 * x]),
        (torch.arange(3, dtype=F64),),
    ),
    (
        "matrix_valued_3x2",
        lambda x: torch.stack([x**k for k in range(6)]).view(3, 2),
        (torch.tensor(1.5),),
    ),
    (
        "two_inputs_two_outputs_f64",
        lambda x, w: (torch.tanh(x @ w), (x**2).sum()),
        (torch.randn(2, 3, dtype=F64), torch.randn(3, 2, dtype=F64)),
    ),
    ("softmax_rows", lambda x: torch.softmax(x, dim=-1), (torch.randn(2, 4),)),
    ("linear_tanh_f64", _linear_layer(), (torch.randn(2, 3, dtype=F64),)),
    ("mlp_outputs_by_input", _mlp(), (torch.randn(2, 3),)),
    ("transposed_output", lambda x: (x * torch.arange(6.0).view(2, 3)).t(), (torch.randn(2, 3),)),
    ("numpy_function", lambda x: NumpySquare.apply(x) * 3, (torch.tensor([1.0, -2.0, 0.5]),)),
]


def _as_matrix(reference: object, outputs: int, inputs: int, out_sizes: list[int]) -> torch.Tensor:
    nested = reference if outputs > 1 else (reference,)
    rows = []
    for size, per_output in zip(out_sizes, nested, strict=True):  # type: ignore[call-overload]
        blocks = per_output if inputs > 1 else (per_output,)
        rows.append(torch.cat([b.reshape(size, -1) for b in blocks], 1))
    return torch.cat(rows, 0)


@pytest.mark.parametrize("method", ["auto", "loop"])
@pytest.mark.parametrize(("name", "func", "inputs"), FUNCTIONS, ids=[f[0] for f in FUNCTIONS])
def test_equals_functional_jacobian(name: str, func: Callable[..., object], inputs: tuple, method: str) -> None:  # type: ignore[type-arg]
    torch.manual_seed(0)
    args = inputs if len(inputs) > 1 else inputs[0]
    result = tracer.jacobian(func, args, method=method)  # type: ignore[arg-type]
    assert result.check is not None and result.check.ok, repr(result)
    # independently here, too
    reference = torch.autograd.functional.jacobian(func, inputs if len(inputs) > 1 else inputs[0])
    outs = func(*inputs)
    outs = outs if isinstance(outs, tuple) else (outs,)
    expected = _as_matrix(reference, len(outs), len(inputs), [o.numel() for o in outs])  # type: ignore[union-attr]
    assert result.matrix.shape == expected.shape
    assert torch.allclose(result.matrix, expected.to(result.matrix.dtype), rtol=1e-6, atol=1e-6)
    assert result.matrix.dtype == outs[0].dtype  # type: ignore[union-attr]
    if method == "loop":
        assert result.method == "loop" and result.fallback == "method='loop' was asked for"
    elif name == "numpy_function":
        assert result.method == "loop" and result.fallback is not None and "vmap could not batch" in result.fallback
    else:
        assert result.method == "vmap" and result.fallback is None
        assert result.replay_max_error == 0.0
    # one recorded pass per row, each with its one-hot seed, whose leaves hold that row
    assert len(result.traces) == result.shape[0]
    for r, trace in enumerate(result.traces):
        assert trace.kind == "grad"
        seeds = torch.cat([s.v.as_tensor().reshape(-1) for s in trace.seeds])  # type: ignore[union-attr]
        assert torch.equal(seeds, torch.eye(result.shape[0], dtype=seeds.dtype)[r])
        row = torch.cat(
            [
                trace.leaves[n].grad.as_tensor().reshape(-1)  # type: ignore[union-attr]
                if trace.leaves[n].grad is not None
                else torch.zeros(result.block(0, j).shape[len(result.output_shapes[0]) :].numel())
                for j, n in enumerate(result.input_names)
            ]
        )
        assert torch.allclose(row.to(result.matrix.dtype), result.matrix[r])


def test_tutorial_002_mm_with_tensors() -> None:
    """y = x M; the tutorial fills jacobian[:, i] from x.grad after seed e_i, and finds M itself.
    Our rows are outputs, so the matrix is Mᵀ — and the tutorial's columns are our rows."""
    x = torch.tensor([[10.0, 5.0]], requires_grad=True)
    y = torch.mm(x, CONST_M)
    result = tracer.jacobian(y, x)
    assert torch.equal(result.matrix, CONST_M.t())
    assert torch.equal(result.block(), CONST_M.t().reshape(1, 2, 1, 2))
    assert result.output_names == ("y",) and result.input_names == ("x",)
    assert result.check is None and "pass the function itself" in (result.check_note or "")
    assert x.grad is None  # torch.autograd.grad: .grad untouched
    with pytest.raises(RuntimeError, match="second time"):
        y.backward(torch.ones(1, 2))  # like torch.autograd.grad, the last pass freed the graph


def test_grad_is_never_touched_and_retain_graph_keeps_it() -> None:
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x.grad = torch.tensor([7.0, 7.0, 7.0])
    y = x**2
    for method in ("auto", "loop"):
        result = tracer.jacobian(y, x, method=method, retain_graph=True)  # type: ignore[arg-type]
        assert torch.equal(result.matrix, torch.diag(2 * x.detach()))
    assert torch.equal(x.grad, torch.tensor([7.0, 7.0, 7.0]))
    y.backward(torch.ones(3))  # the graph is still there
    assert torch.equal(x.grad, torch.tensor([9.0, 11.0, 13.0]))


def test_record_false_uses_one_batched_pass() -> None:
    x = torch.randn(4, requires_grad=True)
    with tracer.record() as outer:
        result = tracer.jacobian(lambda x: x.sin() * x, x, record=False)
    assert result.method == "vmap" and result.traces == () and result.replay_max_error is None
    assert result.check is not None and result.check.ok
    assert len(outer.traces) == 0  # the vmapped pass and the reference passes are not recorded


def test_an_outer_record_block_sees_exactly_the_row_passes() -> None:
    x = torch.randn(3, requires_grad=True)
    with tracer.record() as outer:
        result = tracer.jacobian(lambda x: x.exp(), x, method="loop")
    assert len(outer.traces) == 3 == len(result.traces)
    assert [t.seeds[0].v.values for t in outer.traces] == [  # type: ignore[union-attr]
        (1.0, 0.0, 0.0),
        (0.0, 1.0, 0.0),
        (0.0, 0.0, 1.0),
    ]


def test_single_element_output_is_one_pass() -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    result = tracer.jacobian((x**2).sum(), x)
    assert result.method == "loop" and "single" in (result.fallback or "")
    assert torch.equal(result.matrix, torch.tensor([[2.0, 4.0]]))


def test_unused_input_gives_zero_columns() -> None:
    x = torch.tensor([1.0, 2.0])
    w = torch.tensor([3.0])
    result = tracer.jacobian(lambda x, w: x * 2, (x, w))
    assert torch.equal(result.matrix, torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]]))
    assert result.check is not None and result.check.ok


def test_as_functional_matches_torch_nesting() -> None:
    x, w = torch.randn(2, dtype=F64), torch.randn(2, dtype=F64)
    result = tracer.jacobian(lambda x, w: (x * w, (x + w).sum()), (x, w))
    ours = result.as_functional()
    theirs = torch.autograd.functional.jacobian(lambda x, w: (x * w, (x + w).sum()), (x, w))
    assert len(ours) == len(theirs) == 2
    for a_row, b_row in zip(ours, theirs, strict=True):
        for a, b in zip(a_row, b_row, strict=True):
            assert a.shape == b.shape and torch.allclose(a, b)
    single = tracer.jacobian(lambda x: x * 3, x).as_functional()
    assert isinstance(single, torch.Tensor) and torch.equal(single, 3 * torch.eye(2, dtype=F64))


def test_repr_shows_method_check_and_matrix() -> None:
    x = torch.tensor([[10.0, 5.0]])
    text = repr(tracer.jacobian(lambda x: torch.mm(x, CONST_M), x))
    assert text.startswith("<tracer.jacobian of output[1, 2] w.r.t. x[1, 2]: 2 × 2 float32")
    assert "method: vmap (is_grads_batched=True, one batched pass)" in text
    assert "recorded: 2 one-hot passes in .traces, equal to the vmapped rows" in text
    assert "check: equals torch.autograd.functional.jacobian" in text
    assert "output[0,0]       1       3" in text
    big = repr(tracer.jacobian(lambda x: x * 2, torch.randn(20), record=False))
    assert "matrix: 20 × 20, ‖J‖_F = " in big


def test_bad_input_gets_a_clear_error() -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError, match=r"unknown method: 'fast' \(must be one of \['auto', 'vmap', 'loop'\]\)"):
        tracer.jacobian(x * 2, x, method="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="input 0 does not require grad"):
        tracer.jacobian(x * 2, torch.ones(2))
    with pytest.raises(ValueError, match="output 0 does not require grad"):
        tracer.jacobian(torch.ones(2), x)
    with pytest.raises(TypeError, match="outputs must be a tensor or a non-empty list/tuple of tensors, got str"):
        tracer.jacobian("y", x)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="floating-point inputs"):
        tracer.jacobian(lambda i: i * 2, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="names= gives 2 name"):
        tracer.jacobian(x * 2, x, names=["a", "b"])


def test_a_users_own_batched_grad_inside_record_passes_through() -> None:
    """torch.autograd.grad(is_grads_batched=True) batches with the legacy vmap; the recorder must let it be."""
    x = torch.randn(3, requires_grad=True)
    y = x.sin()
    with tracer.record() as rec:
        (g,) = torch.autograd.grad(y, x, torch.eye(3), is_grads_batched=True)
    assert torch.allclose(g, torch.diag(x.detach().cos()))
    assert rec.traces == []


def test_transformer_layer_input_jacobian() -> None:
    from tests.models import transformer

    layer, src, _ = transformer()
    result = tracer.jacobian(lambda s: layer(s)[0, :, :4], src, jacobian_limit=0)
    assert result.shape == (12, 48) and result.method == "vmap"
    assert result.check is not None and result.check.ok, repr(result)
    assert result.replay_max_error is not None and result.replay_max_error <= 1e-6
    expected = torch.autograd.functional.jacobian(lambda s: layer(s)[0, :, :4], src).reshape(12, 48)
    assert torch.allclose(result.matrix, expected, atol=1e-6)
    assert all(p.grad is None for p in layer.parameters())  # nothing accumulated into the model
