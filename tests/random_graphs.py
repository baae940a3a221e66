"""Random small autograd graphs for property tests: a hypothesis strategy that draws a program, and its interpreter.

A program is a few leaf shapes plus a list of ops; each op reads earlier tensors of a pool (leaves, constants,
results) by position and appends its result, so one program can be replayed on fresh leaves as often as needed:
untraced, traced, and inside torch.autograd.functional.jacobian. Ops cover elementwise maths, broadcasting,
reductions, views, in-place writes (also into views, giving CopySlices), matmul, indexing, stack/cat, detach and
reuse of one tensor several times. Operands are picked from live tensors while drawing, so every drawn program
runs forward; a backward error (an in-place write over a saved tensor) is possible and must then be the same
with and without tracing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from hypothesis import strategies as st

MAX_ELEMENTS = 24  # results stay small, so every node's Jacobian is within the recorder's limit of 64
LEAF_SHAPES: tuple[tuple[int, ...], ...] = ((), (3,), (2,), (2, 3), (1, 3), (3, 1), (2, 2))


@dataclass(frozen=True)
class Op:
    kind: str
    args: tuple[int, ...]  # positions in the pool
    param: Any = None

    def __repr__(self) -> str:
        return f"{self.kind}{list(self.args)}{'' if self.param is None else ' ' + repr(self.param)}"


@dataclass(frozen=True)
class Program:
    dtype: torch.dtype
    leaf_shapes: tuple[tuple[int, ...], ...]
    leaf_seed: int
    ops: tuple[Op, ...]
    seed_v: int | None  # None: backward with gradient=None (the output is a scalar)

    def leaves(self) -> dict[str, torch.Tensor]:
        """Fresh leaf tensors (requires_grad) with the program's values."""
        g = torch.Generator().manual_seed(self.leaf_seed)
        return {
            f"x{k}": torch.randn(s, generator=g, dtype=torch.float64).to(self.dtype).requires_grad_()
            for k, s in enumerate(self.leaf_shapes)
        }

    def forward(self, leaves: dict[str, torch.Tensor]) -> torch.Tensor:
        pool = list(leaves.values())
        for op in self.ops:
            pool.append(apply(op, pool, self.dtype))
        return pool[-1]

    def seed(self, out: torch.Tensor) -> torch.Tensor | None:
        if self.seed_v is None:
            return None
        g = torch.Generator().manual_seed(self.seed_v)
        return torch.randn(out.shape, generator=g, dtype=torch.float64).to(out.dtype)


def _const(shape: Sequence[int], seed: int, dtype: torch.dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(tuple(shape), generator=g, dtype=torch.float64).to(dtype)


UNARY: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sin": torch.sin,
    "cos": torch.cos,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "exp": torch.exp,
    "square": lambda a: a * a,
    "pow3": lambda a: a**3,
    "neg": torch.neg,
    "abs": torch.abs,
    "relu": torch.relu,
    "scale": lambda a: 1.5 * a,
    "clamp": lambda a: a.clamp(-0.5, 0.5),
    "softplus": torch.nn.functional.softplus,
    "sqrt1p": lambda a: (a * a + 1).sqrt(),
}
BINARY: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "add": torch.add,
    "sub": torch.sub,
    "mul": torch.mul,
    "div": lambda a, b: a / (1 + b * b),
    "maximum": torch.maximum,
}
REDUCE_ALL: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sum": torch.sum,
    "mean": torch.mean,
    "norm1p": lambda a: (a * a + 1).sum().sqrt(),
    "prod": torch.prod,
}
REDUCE_DIM: dict[str, Callable[[torch.Tensor, int, bool], torch.Tensor]] = {
    "sum_dim": lambda a, d, k: a.sum(d, keepdim=k),
    "mean_dim": lambda a, d, k: a.mean(d, keepdim=k),
    "amax_dim": lambda a, d, k: a.amax(d, keepdim=k),
    "logsumexp_dim": lambda a, d, k: a.logsumexp(d, keepdim=k),
    "softmax_dim": lambda a, d, k: a.softmax(d),
    "cumsum_dim": lambda a, d, k: a.cumsum(d),
}
VIEWS: dict[str, Callable[[torch.Tensor, Any], torch.Tensor]] = {
    "reshape_flat": lambda a, p: a.reshape(-1),
    "transpose": lambda a, p: a.transpose(0, -1),
    "unsqueeze": lambda a, p: a.unsqueeze(p),
    "squeeze": lambda a, p: a.squeeze(),
    "expand": lambda a, p: a.expand(tuple(3 if s == 1 else s for s in a.shape)),
    "narrow": lambda a, p: a[1:],
    "select": lambda a, p: a[p],
    "flip": lambda a, p: a.flip(0),
    "view_as_flat_back": lambda a, p: a.reshape(-1).view(a.shape),
}


def apply(op: Op, pool: list[torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
    """Run one op on the pool (may write into pool tensors in place, like the user code it imitates)."""
    a = pool[op.args[0]] if op.args else None
    k, p = op.kind, op.param
    if k == "const":
        return _const(p[0], p[1], dtype)
    assert a is not None
    if k in UNARY:
        return UNARY[k](a)
    if k in BINARY:
        return BINARY[k](a, pool[op.args[1]])
    if k in REDUCE_ALL:
        return REDUCE_ALL[k](a)
    if k in REDUCE_DIM:
        return REDUCE_DIM[k](a, p[0], p[1])
    if k in VIEWS:
        return VIEWS[k](a, p)
    if k == "matmul":
        b = pool[op.args[1]] if len(op.args) > 1 else _const(p[0], p[1], dtype)
        return a @ b
    if k == "index_list":
        return a[torch.tensor(p, dtype=torch.long)]
    if k == "index_select_last":
        return a.index_select(-1, torch.tensor(p, dtype=torch.long))
    if k == "mask":
        return a[torch.tensor(p, dtype=torch.bool).reshape(a.shape)]
    if k == "stack":
        return torch.stack([pool[i] for i in op.args])
    if k == "cat":
        return torch.cat([pool[i] for i in op.args])
    if k == "detach":
        return a.detach()
    if k == "clone_mul_":
        return a.clone().mul_(p)
    if k == "clone_add_":
        return a.clone().add_(pool[op.args[1]])
    if k == "clone_sin_":
        return a.clone().sin_()
    if k == "clone_view_mul_":  # in place through a view of the clone: CopySlices
        c = a.clone()
        c[p].mul_(2.0)
        return c
    if k == "clone_setitem":  # y[i] = b, the tutorials' item assignment
        c = a.clone()
        c[p] = pool[op.args[1]]
        return c
    if k == "inplace_mul_":  # straight into an intermediate that other ops may have saved
        return a.mul_(p)
    if k == "sum_all_requiring":
        return torch.stack([pool[i].sum() for i in op.args])
    raise AssertionError(f"unknown op {k}")


# --------------------------------------------------------------------------- drawing programs

OP_KINDS = (
    *("const", "unary", "unary", "binary", "binary", "reduce_all", "reduce_dim", "view", "view", "matmul"),
    *("index_list", "index_select_last", "mask", "stack", "cat", "detach", "clone_mul_", "clone_add_"),
    *("clone_sin_", "clone_view_mul_", "clone_setitem", "inplace_mul_"),
)


def _broadcasts(a: torch.Tensor, b: torch.Tensor) -> bool:
    try:
        torch.broadcast_shapes(a.shape, b.shape)
    except RuntimeError:
        return False
    return True


def _shares_leaf_storage(t: torch.Tensor, pool: list[torch.Tensor]) -> bool:
    """Whether `t` is a leaf, a view of one or its .detach(): torch refuses in-place writes into the first two,
    and a write into the last would change the leaf's values between the replays the tests compare."""
    leaves = {p.untyped_storage().data_ptr() for p in pool if p.is_leaf and p.requires_grad}
    return t.untyped_storage().data_ptr() in leaves


@st.composite
def _op(draw: st.DrawFn, pool: list[torch.Tensor], dtype: torch.dtype) -> Op | None:
    """One op over the live pool, or None when the drawn kind does not fit the tensors at hand."""
    kind = draw(st.sampled_from(OP_KINDS))
    n = len(pool)
    recent = st.integers(max(0, n - 4), n - 1)  # mostly recent tensors, so graphs grow deep, not only wide
    i = draw(st.one_of(recent, st.integers(0, n - 1)))
    a = pool[i]

    def partner(fits: Callable[[torch.Tensor], bool]) -> int:
        choices = [j for j, t in enumerate(pool) if fits(t)]
        return draw(st.sampled_from(choices)) if choices else i

    index_kinds = ("index_list", "index_select_last", "clone_view_mul_", "clone_setitem", "reduce_dim", "view")
    if a.numel() == 0 and kind in index_kinds:
        return None
    if kind == "const":
        shape = draw(st.sampled_from([tuple(a.shape), *LEAF_SHAPES]))
        return Op("const", (), (shape, draw(st.integers(0, 2**16))))
    if kind == "unary":
        return Op(draw(st.sampled_from(sorted(UNARY))), (i,))
    if kind == "binary":
        j = partner(lambda t: _broadcasts(a, t))  # falls back to a with itself: reuse
        return Op(draw(st.sampled_from(sorted(BINARY))), (i, j))
    if kind == "reduce_all":
        return Op(draw(st.sampled_from(sorted(REDUCE_ALL))), (i,))
    if kind == "reduce_dim":
        if a.dim() == 0:
            return None
        d = draw(st.integers(-a.dim(), a.dim() - 1))
        return Op(draw(st.sampled_from(sorted(REDUCE_DIM))), (i,), (d, draw(st.booleans())))
    if kind == "view":
        name = draw(st.sampled_from(sorted(VIEWS)))
        if name in ("transpose", "narrow", "select", "flip") and (a.dim() == 0 or a.shape[0] < 2):
            return None
        param = None
        if name == "unsqueeze":
            param = draw(st.integers(-a.dim() - 1, a.dim()))
        if name == "select":
            param = draw(st.integers(-a.shape[0], a.shape[0] - 1))
        return Op(name, (i,), param)
    if kind == "matmul":
        if a.dim() not in (1, 2):
            return None
        inner = a.shape[-1]
        j = draw(st.sampled_from([None, *[j for j, t in enumerate(pool) if t.dim() in (1, 2) and t.shape[0] == inner]]))
        if j is not None:
            return Op("matmul", (i, j))
        shape = draw(st.sampled_from([(inner,), (inner, 1), (inner, 2), (inner, 3)]))
        return Op("matmul", (i,), (shape, draw(st.integers(0, 2**16))))
    if kind == "index_list":
        if a.dim() == 0:
            return None
        idx = draw(st.lists(st.integers(-a.shape[0], a.shape[0] - 1), min_size=1, max_size=4))  # repeats allowed
        return Op("index_list", (i,), tuple(idx))
    if kind == "index_select_last":
        if a.dim() == 0:
            return None
        idx = draw(st.lists(st.integers(0, a.shape[-1] - 1), min_size=1, max_size=4))
        return Op("index_select_last", (i,), tuple(idx))
    if kind == "mask":
        if a.dim() == 0 or a.numel() == 0:
            return None
        return Op("mask", (i,), tuple(draw(st.lists(st.booleans(), min_size=a.numel(), max_size=a.numel()))))
    if kind == "stack":
        same = [j for j, t in enumerate(pool) if t.shape == a.shape]
        others = draw(st.lists(st.sampled_from(same), min_size=0, max_size=2))
        return Op("stack", (i, *others))
    if kind == "cat":
        if a.dim() == 0:
            return None
        same = [j for j, t in enumerate(pool) if t.dim() == a.dim() and t.shape[1:] == a.shape[1:]]
        others = draw(st.lists(st.sampled_from(same), min_size=1, max_size=2))
        return Op("cat", (i, *others))
    if kind == "detach":
        return Op("detach", (i,))
    if kind == "clone_mul_":
        return Op("clone_mul_", (i,), draw(st.sampled_from([0.5, -2.0, 3.0])))
    if kind == "clone_add_":
        j = partner(lambda t: _broadcasts(a, t) and torch.broadcast_shapes(a.shape, t.shape) == a.shape)
        return Op("clone_add_", (i, j))
    if kind == "clone_sin_":
        return Op("clone_sin_", (i,))
    if kind == "clone_view_mul_":
        if a.dim() == 0:
            return None
        return Op("clone_view_mul_", (i,), draw(st.integers(0, a.shape[0] - 1)))
    if kind == "clone_setitem":
        if a.dim() == 0:
            return None
        row = draw(st.integers(0, a.shape[0] - 1))
        target = a[row].shape
        j = partner(lambda t: t.dim() <= len(target) and _broadcasts(a[row], t))
        if j == i or torch.broadcast_shapes(target, pool[j].shape) != target:
            return None
        return Op("clone_setitem", (i, j), row)
    if kind == "inplace_mul_":
        if _shares_leaf_storage(a, pool):
            return None
        return Op("inplace_mul_", (i,), draw(st.sampled_from([0.5, 2.0])))
    raise AssertionError(kind)  # pragma: no cover


@st.composite
def programs(draw: st.DrawFn, max_ops: int = 8) -> Program:
    """A random program whose output requires grad and holds at most MAX_ELEMENTS elements at every step."""
    dtype = draw(st.sampled_from([torch.float64, torch.float64, torch.float32]))
    shapes = tuple(draw(st.lists(st.sampled_from(LEAF_SHAPES), min_size=1, max_size=3)))
    leaf_seed = draw(st.integers(0, 2**16))
    program = Program(dtype, shapes, leaf_seed, (), None)
    pool = list(program.leaves().values())
    ops: list[Op] = []
    for _ in range(draw(st.integers(1, max_ops))):
        op = draw(_op(pool, dtype))
        if op is None:
            continue
        try:
            result = apply(op, pool, dtype)
        except RuntimeError:  # e.g. an in-place write into a tensor whose view another op saved
            continue
        if result.numel() > MAX_ELEMENTS:
            continue
        ops.append(op)
        pool.append(result)
    if draw(st.booleans()):  # gather several results into one output, so more of the pool is on the graph
        live = [j for j, t in enumerate(pool) if t.requires_grad][-4:]
        if live:
            ops.append(Op("sum_all_requiring", tuple(live)))
            pool.append(apply(ops[-1], pool, dtype))
    out = pool[-1]
    if not out.requires_grad:  # everything detached: gather the results that still require grad instead
        ops.append(Op("sum_all_requiring", tuple([j for j, t in enumerate(pool) if t.requires_grad][-4:])))
        out = apply(ops[-1], pool, dtype)
    scalar_default = out.numel() == 1 and draw(st.booleans())
    seed_v = None if scalar_default else draw(st.integers(0, 2**16))
    return Program(dtype, shapes, leaf_seed, tuple(ops), seed_v)
