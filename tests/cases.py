"""Every case of the source tutorials (../shared/seeds/) as data: fresh leaves, a forward, a seed, the answer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

Tensors = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Case:
    id: str
    tutorial: str  # which seed file it comes from
    leaves: Callable[[], Tensors]  # fresh leaf tensors (requires_grad set)
    forward: Callable[[Tensors], torch.Tensor]
    seed: Callable[[torch.Tensor], torch.Tensor | None] = lambda y: None
    expected: Callable[[Tensors], Tensors] = field(default=lambda leaves: {})  # the tutorial's closed form

    def __repr__(self) -> str:
        return self.id


def t(data: Any, dtype: torch.dtype = torch.float32, grad: bool = True) -> torch.Tensor:
    return torch.tensor(data, dtype=dtype, requires_grad=grad)


def one_hot_like(y: torch.Tensor, *index: int) -> torch.Tensor:
    v = torch.zeros_like(y)
    v[index] = 1.0
    return v


def _item_assign_scalar(d: Tensors) -> torch.Tensor:
    x = d["x"]
    y = torch.zeros(2, 1)
    y[0] = x**3
    y[1] = 2 * x**2
    return y


def _item_assign_vector(d: Tensors) -> torch.Tensor:
    x = d["x"]
    y = torch.zeros(3, 1)
    y[0] = x[0] ** 2
    y[1] = x[1] ** 3
    y[2] = x[1] ** 4
    return y


def _control_flow(d: Tensors) -> torch.Tensor:
    b = d["a"] * 2
    while b.norm() < 1000:
        b = b * 2
    return b if b.sum() > 0 else 100 * b


def _detach(d: Tensors) -> torch.Tensor:
    x = d["x"]
    u = (x * x).detach()
    return (u * x).sum()


CONST_A = torch.tensor([[1.0, 2.0]])
CONST_X = torch.tensor([[3.0], [5.0]])
CONST_M = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
W35 = torch.tensor([3.0, 5.0])
W_PM = torch.tensor([-1.0, 1.0], dtype=torch.float64)
RANDOM_SEED_002 = torch.tensor([-0.1348, -1.0923, -0.4743])

CASES: list[Case] = [
    # 000: legacy Variable API, modern spelling
    Case(
        "scalar_default",
        "000",
        lambda: {"x": t([0.7073])},
        lambda d: 3 * d["x"] ** 2,
        expected=lambda d: {"x": 6 * d["x"]},
    ),
    Case(
        "scalar_ones",
        "000",
        lambda: {"x": t([0.8535])},
        lambda d: 3 * d["x"] ** 2,
        seed=lambda y: torch.ones(1),
        expected=lambda d: {"x": 6 * d["x"]},
    ),
    Case(
        "scalar_100",
        "000",
        lambda: {"x": t([0.7586])},
        lambda d: 3 * d["x"] ** 2,
        seed=lambda y: 100 * torch.ones(1),
        expected=lambda d: {"x": 600 * d["x"]},
    ),
    Case(
        "vector_to_scalar",
        "000",
        lambda: {"x": t([[0.9647], [0.8132]])},
        lambda d: d["x"][0] ** 3 + 2 * d["x"][1] ** 2,
        expected=lambda d: {"x": torch.stack([3 * d["x"][0] ** 2, 4 * d["x"][1]])},
    ),
    Case(
        "vector_to_scalar_100",
        "000",
        lambda: {"x": t([[0.4522], [0.1350]])},
        lambda d: d["x"][0] ** 3 + 2 * d["x"][1] ** 2,
        seed=lambda y: 100 * torch.ones(1),
        expected=lambda d: {"x": 100 * torch.stack([3 * d["x"][0] ** 2, 4 * d["x"][1]])},
    ),
    Case(
        "item_assign_scalar_to_vector",
        "000",
        lambda: {"x": t([0.9004])},
        _item_assign_scalar,
        seed=lambda y: torch.ones(y.size()),
        expected=lambda d: {"x": 3 * d["x"] ** 2 + 4 * d["x"]},
    ),
    Case(
        "item_assign_vector_to_vector",
        "000",
        lambda: {"x": t([[0.3432], [0.5206]])},
        _item_assign_vector,
        seed=lambda y: torch.ones(y.size()),
        expected=lambda d: {"x": torch.stack([2 * d["x"][0], 3 * d["x"][1] ** 2 + 4 * d["x"][1] ** 3])},
    ),
    Case(
        "item_assign_vector_to_vector_100",
        "000",
        lambda: {"x": t([[0.2234], [0.2954]])},
        _item_assign_vector,
        seed=lambda y: 100 * torch.ones(y.size()),
        expected=lambda d: {"x": 100 * torch.stack([2 * d["x"][0], 3 * d["x"][1] ** 2 + 4 * d["x"][1] ** 3])},
    ),
    # 001: modern API, shapes
    Case(
        "zero_d_default",
        "001",
        lambda: {"x": t(1.0)},
        lambda d: 2 * d["x"] + d["x"] ** 2,
        expected=lambda d: {"x": torch.tensor(4.0)},
    ),
    Case(
        "zero_d_100",
        "001",
        lambda: {"x": t(1.0)},
        lambda d: 2 * d["x"] + d["x"] ** 2,
        seed=lambda y: torch.tensor(100.0),
        expected=lambda d: {"x": torch.tensor(400.0)},
    ),
    Case(
        "shape_1_default",
        "001",
        lambda: {"x": t([1.0])},
        lambda d: 2 * d["x"] + d["x"] ** 2,
        expected=lambda d: {"x": torch.tensor([4.0])},
    ),
    Case(
        "shape_1_100",
        "001",
        lambda: {"x": t([1.0])},
        lambda d: 2 * d["x"] + d["x"] ** 2,
        seed=lambda y: torch.tensor([100.0]),
        expected=lambda d: {"x": torch.tensor([400.0])},
    ),
    Case(
        "shape_1x1_default",
        "004",
        lambda: {"x": t([[1.0]])},
        lambda d: d["x"] ** 2,
        expected=lambda d: {"x": torch.tensor([[2.0]])},
    ),
    Case(
        "two_to_scalar_100",
        "001",
        lambda: {"x": t([1.0, 2.0])},
        lambda d: 2 * d["x"][0] + d["x"][1] ** 2,
        seed=lambda y: torch.tensor(100.0),
        expected=lambda d: {"x": torch.tensor([200.0, 400.0])},
    ),
    Case(
        "sum_100",
        "001",
        lambda: {"x": t([1.0, 2.0])},
        lambda d: d["x"].sum(),
        seed=lambda y: torch.tensor(100.0),
        expected=lambda d: {"x": torch.tensor([100.0, 100.0])},
    ),
    Case(
        "mm_column_default",
        "001",
        lambda: {"x": t([[3.0], [5.0]])},
        lambda d: torch.mm(CONST_A, d["x"]),
        expected=lambda d: {"x": torch.tensor([[1.0], [2.0]])},
    ),
    Case(
        "mm_column_seed_1x1",
        "001",
        lambda: {"x": t([[3.0], [5.0]])},
        lambda d: torch.mm(CONST_A, d["x"]),
        seed=lambda y: torch.tensor([[100.0]]),
        expected=lambda d: {"x": torch.tensor([[100.0], [200.0]])},
    ),
    Case(
        "mm_row",
        "001",
        lambda: {"a": t([[1.0, 2.0]])},
        lambda d: torch.mm(d["a"], CONST_X),
        expected=lambda d: {"a": torch.tensor([[3.0, 5.0]])},
    ),
    Case(
        "scale_ones",
        "001",
        lambda: {"x": t([1.0, 2.0])},
        lambda d: 3.14 * d["x"],
        seed=lambda y: torch.tensor([1.0, 1.0]),
        expected=lambda d: {"x": torch.tensor([3.14, 3.14])},
    ),
    Case(
        "scale_weighted",
        "001",
        lambda: {"x": t([1.0, 2.0])},
        lambda d: 3.14 * d["x"],
        seed=lambda y: torch.tensor([10.0, 100.0]),
        expected=lambda d: {"x": torch.tensor([31.4, 314.0])},
    ),
    # 002: pow, Lyapunov, autograd.backward lists, one-hot rows
    Case("pow", "002", lambda: {"x": t([2.0])}, lambda d: d["x"].pow(2), expected=lambda d: {"x": torch.tensor([4.0])}),
    Case(
        "lyapunov",
        "002",
        lambda: {"x": t([2.0, 3.0])},
        lambda d: d["x"].pow(2),
        seed=lambda y: torch.ones_like(y),
        expected=lambda d: {"x": torch.tensor([4.0, 6.0])},
    ),
    Case(
        "random_seed",
        "002",
        lambda: {"x": t([1.0, 2.0, 3.0])},
        lambda d: d["x"] ** 2,
        seed=lambda y: RANDOM_SEED_002,
        expected=lambda d: {"x": 2 * d["x"] * RANDOM_SEED_002},
    ),
    Case(
        "mm_one_hot_row0",
        "002",
        lambda: {"x": t([[10.0, 5.0]])},
        lambda d: torch.mm(d["x"], CONST_M),
        seed=lambda y: torch.tensor([[1.0, 0.0]]),
        expected=lambda d: {"x": CONST_M[:, 0].reshape(1, 2)},
    ),
    Case(
        "mm_one_hot_row1",
        "002",
        lambda: {"x": t([[10.0, 5.0]])},
        lambda d: torch.mm(d["x"], CONST_M),
        seed=lambda y: torch.tensor([[0.0, 1.0]]),
        expected=lambda d: {"x": CONST_M[:, 1].reshape(1, 2)},
    ),
    Case(
        "z_one_hot_0",
        "002",
        lambda: {"x": t([[1.0, 2.0, 3.0, 4.0]])},
        lambda d: 2 * d["x"] + 3 * d["x"][0, 3],
        seed=lambda y: torch.tensor([[1.0, 0, 0, 0]]),
        expected=lambda d: {"x": torch.tensor([[2.0, 0, 0, 3]])},
    ),
    Case(
        "z_one_hot_1",
        "002",
        lambda: {"x": t([[1.0, 2.0, 3.0, 4.0]])},
        lambda d: 2 * d["x"] + 3 * d["x"][0, 3],
        seed=lambda y: torch.tensor([[0.0, 1, 0, 0]]),
        expected=lambda d: {"x": torch.tensor([[0.0, 2, 0, 3]])},
    ),
    Case(
        "z_ones",
        "002",
        lambda: {"x": t([[1.0, 2.0, 3.0, 4.0]])},
        lambda d: 2 * d["x"] + 3 * d["x"][0, 3],
        seed=lambda y: torch.ones_like(y),
        expected=lambda d: {"x": torch.tensor([[2.0, 2, 2, 14]])},
    ),
    Case(
        "z_sum_dim1",
        "002",
        lambda: {"x": t([[1.0, 2.0, 3.0, 4.0]])},
        lambda d: (2 * d["x"] + 3 * d["x"][0, 3]).sum(dim=1),
        expected=lambda d: {"x": torch.tensor([[2.0, 2, 2, 14]])},
    ),
    Case(
        "x2_plus_x4",
        "002",
        lambda: {"x": t([[1.0, 2.0, 3.0, 4.0]])},
        lambda d: d["x"] ** 2 + d["x"] ** 4,
        seed=lambda y: torch.ones_like(y),
        expected=lambda d: {"x": torch.tensor([[6.0, 36, 114, 264]])},
    ),
    # 003: d2l
    Case(
        "dot",
        "003",
        lambda: {"x": torch.arange(4.0).requires_grad_()},
        lambda d: 2 * torch.dot(d["x"], d["x"]),
        expected=lambda d: {"x": 4 * d["x"]},
    ),
    Case(
        "sum",
        "003",
        lambda: {"x": torch.arange(4.0).requires_grad_()},
        lambda d: d["x"].sum(),
        expected=lambda d: {"x": torch.ones(4)},
    ),
    Case(
        "x_times_x_ones",
        "003",
        lambda: {"x": torch.arange(4.0).requires_grad_()},
        lambda d: d["x"] * d["x"],
        seed=lambda y: torch.ones(len(y)),
        expected=lambda d: {"x": 2 * d["x"]},
    ),
    Case(
        "detach",
        "003",
        lambda: {"x": torch.arange(4.0).requires_grad_()},
        _detach,
        expected=lambda d: {"x": d["x"] * d["x"]},
    ),
    Case("control_flow", "003", lambda: {"a": t(100.0)}, _control_flow, expected=lambda d: {"a": torch.tensor(16.0)}),
    # 004: theory
    Case("square", "004", lambda: {"x": t(1.0)}, lambda d: d["x"] ** 2, expected=lambda d: {"x": torch.tensor(2.0)}),
    Case(
        "many_points_ones_like",
        "004",
        lambda: {"x": torch.linspace(-2, 2, 5).requires_grad_()},
        lambda d: d["x"] ** 2,
        seed=lambda y: torch.ones_like(y),
        expected=lambda d: {"x": torch.tensor([-4.0, -2, 0, 2, 4])},
    ),
    Case(
        "many_points_sum_trick",
        "004",
        lambda: {"x": torch.linspace(-2, 2, 5).requires_grad_()},
        lambda d: (d["x"] ** 2).sum(),
        expected=lambda d: {"x": torch.tensor([-4.0, -2, 0, 2, 4])},
    ),
    Case(
        "many_points_column",
        "004",
        lambda: {"x": torch.linspace(-2, 2, 5).view(-1, 1).requires_grad_()},
        lambda d: d["x"] ** 2,
        seed=lambda y: torch.ones_like(y),
        expected=lambda d: {"x": 2 * d["x"]},
    ),
    Case(
        "weighted_squares",
        "004",
        lambda: {"x": t([-1.0, 2.0])},
        lambda d: (d["x"] * d["x"] * W35).sum(),
        expected=lambda d: {"x": torch.tensor([-6.0, 20.0])},
    ),
    Case(
        "weighted_many_points_f64",
        "004",
        lambda: {"x": torch.arange(6, dtype=torch.float64).view(3, 2).requires_grad_()},
        lambda d: (d["x"] * d["x"] * W_PM).sum(1),
        seed=lambda y: torch.ones_like(y),
        expected=lambda d: {"x": torch.tensor([[0.0, 2], [-4, 6], [-8, 10]], dtype=torch.float64)},
    ),
    Case(
        "stack_component_1",
        "004",
        lambda: {"x": t(1.0)},
        lambda d: torch.stack([-(d["x"] ** 3), 5 * d["x"]]),
        seed=lambda y: torch.tensor([1.0, 0.0]),
        expected=lambda d: {"x": torch.tensor(-3.0)},
    ),
    Case(
        "stack_component_2",
        "004",
        lambda: {"x": t(1.0)},
        lambda d: torch.stack([-(d["x"] ** 3), 5 * d["x"]]),
        seed=lambda y: torch.tensor([0.0, 1.0]),
        expected=lambda d: {"x": torch.tensor(5.0)},
    ),
    Case(
        "stack_many_points_f1",
        "004",
        lambda: {"x": torch.arange(3, dtype=torch.float64).requires_grad_()},
        lambda d: torch.stack([-(d["x"] ** 3), 5 * d["x"]]),
        seed=lambda y: one_hot_rows(y, 0),
        expected=lambda d: {"x": torch.tensor([0.0, -3, -12], dtype=torch.float64)},
    ),
    Case(
        "stack_many_points_f2",
        "004",
        lambda: {"x": torch.arange(3, dtype=torch.float64).requires_grad_()},
        lambda d: torch.stack([-(d["x"] ** 3), 5 * d["x"]]),
        seed=lambda y: one_hot_rows(y, 1),
        expected=lambda d: {"x": torch.tensor([5.0, 5, 5], dtype=torch.float64)},
    ),
    Case(
        "stack_sum_and_squares_1",
        "004",
        lambda: {"x": torch.arange(4, dtype=torch.float64).requires_grad_()},
        lambda d: torch.stack([d["x"].sum(), (d["x"] ** 2).sum()]),
        seed=lambda y: torch.tensor([1.0, 0.0]),
        expected=lambda d: {"x": torch.ones(4, dtype=torch.float64)},
    ),
    Case(
        "stack_sum_and_squares_2",
        "004",
        lambda: {"x": torch.arange(4, dtype=torch.float64).requires_grad_()},
        lambda d: torch.stack([d["x"].sum(), (d["x"] ** 2).sum()]),
        seed=lambda y: torch.tensor([0.0, 1.0]),
        expected=lambda d: {"x": 2 * d["x"]},
    ),
    Case(
        "stack_many_points_grad_f2",
        "004",
        lambda: {"x": torch.arange(12, dtype=torch.float64).view(-1, 4).requires_grad_()},
        lambda d: torch.stack([d["x"].sum(1), (d["x"] ** 2).sum(1)]),
        seed=lambda y: one_hot_rows(y, 1),
        expected=lambda d: {"x": 2 * d["x"]},
    ),
    Case(
        "squares_f64",
        "004",
        lambda: {"x": torch.arange(6, dtype=torch.float64).view(3, 2).requires_grad_()},
        lambda d: (d["x"] ** 2).sum(),
        expected=lambda d: {"x": 2 * d["x"]},
    ),
] + [
    Case(
        f"matrix_valued_{i}{j}",
        "004",
        lambda: {"x": t(1.0)},
        lambda d: torch.stack([d["x"] ** k for k in range(6)]).view(3, 2),
        seed=lambda y, i=i, j=j: one_hot_like(y, i, j),
        expected=lambda d, i=i, j=j: {"x": torch.tensor(float(2 * i + j))},
    )
    for i in range(3)
    for j in range(2)
]


def one_hot_rows(y: torch.Tensor, row: int) -> torch.Tensor:
    """v selecting one component function at every point: ones in row `row`, zeros elsewhere."""
    v = torch.zeros_like(y)
    v[row] = 1.0
    return v
