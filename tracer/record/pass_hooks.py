"""The hooks of one pass, Python or native: installed before the engine runs, removed after, and what they saw."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import torch

from .func_passes import outside_transforms
from .jacobian_budget import JacobianBudget
from .local_jacobian import LocalResult, local_jacobian
from .pass_graph import PassGraph
from .tensors import TensorTable

Handles = Sequence[int | None]  # per node, one table handle per tensor (None or -1: no tensor)


@dataclasses.dataclass
class HookLog:
    """What the hooks saw: the nodes in the order they ran, their local Jacobians, and what could not be
    recorded. The Python hooks also keep each node's handles of v and vᵀJ here; the native ones keep theirs
    until the trace is built."""

    order: list[int] = dataclasses.field(default_factory=list)
    v: list[Handles] = dataclasses.field(default_factory=list)
    vjp: list[Handles] = dataclasses.field(default_factory=list)
    local: dict[int, LocalResult] = dataclasses.field(default_factory=dict)
    budget: JacobianBudget = dataclasses.field(default_factory=JacobianBudget)  # local Jacobians left this pass
    notes: list[str] = dataclasses.field(default_factory=list)

    def could_not_record(self, name: str, exc: Exception) -> None:
        self.notes.append(f"{name}: could not record ({type(exc).__name__}: {exc})")


def _fits(tensors: tuple[torch.Tensor | None, ...], limit: int) -> bool:
    """Whether these gradients have at most `limit` elements together (the Jacobian size limit)."""
    total = 0
    for t in tensors:
        if t is not None:
            total += t.numel()
            if total > limit:
                return False
    return True


class PythonHooks:
    """One Python post-hook per node; `owns` tells whether a node running now runs in this pass.

    Only post-hooks: they run right after a node, with both the v it consumed and the vᵀJ it produced, in the
    engine's execution order, and registering them costs a quarter of what pre-hooks cost. They only snapshot
    into the tensor table (tensors.TensorTable)."""

    def __init__(
        self,
        graph: PassGraph,
        table: TensorTable,
        grad_before: dict[int, int | None],
        log: HookLog,
        owns: Callable[[int], bool],
        jacobian_limit: int,
        in_transform: bool = False,
    ) -> None:
        self.graph = graph
        self.in_transform = in_transform  # a torch.func.grad pass: the hooks work outside the transform
        self.table = table
        self.grad_before = grad_before
        self.log = log
        self.owns = owns
        self.jacobian_limit = jacobian_limit
        self.handles: list[Any] = []
        log.v = [()] * len(graph.fns)
        log.vjp = [()] * len(graph.fns)

    def install(self) -> None:
        fns = self.graph.fns
        for i in range(len(fns)):
            self.handles.append(fns[i].register_hook(self.hook(i)))

    def hook(self, i: int) -> Any:
        """Node i's post-hook."""
        log, table, limit, owns = self.log, self.table, self.jacobian_limit, self.owns
        order, add, add_default, budget = log.order, table.add, table.add_default, log.budget
        v_of, vjp_of, many = log.v, log.vjp, self.graph.fan_in_many[i]
        fn, is_leaf = self.graph.fns[i], i in self.graph.leaf_vars
        # Without an earlier .grad the leaf keeps this very tensor (or a copy) as .grad, so asking for its exact
        # norm holds no extra memory; with one, the sum is made and this tensor freed.
        exact_norm = is_leaf and self.grad_before[i] is None

        def post(grad_inputs: tuple[torch.Tensor | None, ...], grad_outputs: tuple[torch.Tensor | None, ...]) -> None:
            # Runs inside every backward node: kept to plain calls and locals, no keyword arguments.
            if not owns(i):
                return
            order.append(i)
            try:
                if is_leaf:
                    # keep_copy: capture="full" copies it, as the next pass accumulates into .grad in place.
                    v_of[i] = tuple([add(g, exact_norm=exact_norm, keep_copy=True) for g in grad_outputs])
                    return
                if many:
                    # A slot fed by several edges holds their sum, a new tensor: never reuse an edge's record.
                    v_of[i] = tuple([add(g, fresh=k in many) for k, g in enumerate(grad_outputs)])
                else:
                    v_of[i] = tuple([add_default(g) for g in grad_outputs])
                vjp_of[i] = tuple([add_default(g) for g in grad_inputs])
                if limit and _fits(grad_outputs, limit) and _fits(grad_inputs, limit) and budget.take():
                    local = local_jacobian(fn, grad_outputs, grad_inputs, limit)
                    if local is not None:
                        log.local[i] = local
            except Exception as exc:  # recording must never break the pass
                log.could_not_record(self.graph.names[i], exc)

        if not self.in_transform:
            return post

        def post_outside(
            grad_inputs: tuple[torch.Tensor | None, ...], grad_outputs: tuple[torch.Tensor | None, ...]
        ) -> None:
            with outside_transforms():  # what the table allocates must be plain tensors, not the level's wrappers
                post(grad_inputs, grad_outputs)

        return post_outside

    def set_innermost(self, value: bool) -> None:
        """The Python hooks ask running_passes() themselves (PassClaim)."""

    def remove(self) -> None:
        handles, self.handles = self.handles, []
        for h in handles:
            h.remove()


class NativeHooks:
    """The native hooks (native_hooks.cpp) do what PythonHooks' post does, in C++; they call back into Python
    only for a node small enough for its local Jacobian."""

    def __init__(
        self, native: Any, graph: PassGraph, grad_before: dict[int, int | None], log: HookLog, jacobian_limit: int
    ) -> None:
        self.native = native
        self.graph = graph
        self.grad_before = grad_before
        self.log = log
        self.jacobian_limit = jacobian_limit
        self.collected = False  # the native hooks' results were read

    def install(self) -> None:
        """Per node, flags tell the native hooks: 1 = AccumulateGrad, 2 = its v gets an exact norm, 4 = an
        output's node (may claim the pass); the walk told them the v slots fed by several edges."""
        flags = [0] * len(self.graph.fns)
        for i in self.graph.leaf_vars:
            flags[i] = 1 | (2 if self.grad_before[i] is None else 0)
        for root in self.graph.roots:
            if root is not None:
                flags[root[0]] |= 4
        self.native.install(flags, self._jacobian if self.jacobian_limit else None)

    def _jacobian(self, i: int, grad_inputs: list[Any], grad_outputs: list[Any]) -> bool:
        """Called by a native hook (GIL held) for a node small enough for its local Jacobian; False once the
        pass's budget is spent (jacobian_budget.py): the native hooks then stop calling."""
        if not self.log.budget.take():
            return False
        try:
            local = local_jacobian(self.graph.fns[i], tuple(grad_outputs), tuple(grad_inputs), self.jacobian_limit)
        except Exception as exc:  # recording must never break the pass
            self.log.could_not_record(self.graph.names[i], exc)
            return True
        if local is not None:
            self.log.local[i] = local
        return True

    def set_innermost(self, value: bool) -> None:
        """Whether this is the innermost recorded pass of its thread (the native hooks' claim rule)."""
        self.native.set_innermost(value)

    def remove(self) -> None:
        """Take the hooks off (safe to call twice) and collect the order they ran in and their notes."""
        if self.collected:
            return
        self.collected = True
        self.native.remove()
        order, notes, _task = self.native.results()  # each node's handles: read when the trace is built
        self.log.order = order
        self.log.notes.extend(notes)
