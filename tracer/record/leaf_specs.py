"""The leaves and seeds of a pass, read at its end as specs: plain fields, and refs to tensors summarised later."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import torch

from .backward_call import BackwardCall
from .before_pass import BeforePass
from .names import NameBook
from .pass_graph import PassGraph
from .pass_seen import LeafSpec, Ref, SeedSpec, StepV
from .tensors import dtype_name

NESTED_REASON = (
    "not on this pass's graph, but it got its gradient in a nested backward pass that a node of this pass "
    "started (a reentrant torch.utils.checkpoint does this): see the pass recorded after this one"
)
NOT_ON_ANY_PATH = (
    "not on any path from the outputs (not used to compute them, or only through detach() / torch.no_grad())"
)

# torch's own functions, taken before record() wraps torch.autograd.backward/grad to explain errors
_SEED_ARGUMENTS = {torch.autograd.backward.__code__: "grad_tensors", torch.autograd.grad.__code__: "grad_outputs"}


@dataclasses.dataclass
class Totals:
    """Handles of what the pass left: each leaf's and retained tensor's .grad, and what torch.autograd.grad
    returned."""

    leaves: dict[int, int | None]
    retained: list[int | None]
    results: list[int | None]


class LeafSpecs:
    """Names the leaves (the caller's names, else leaf0, leaf1, …) and specs every leaf and seed of one pass."""

    def __init__(
        self, *, call: BackwardCall, names: NameBook, graph: PassGraph, before: BeforePass, nested_reached: set[int]
    ) -> None:
        self.call = call
        self.names = names
        self.graph = graph
        self.before = before
        self.nested_reached = nested_reached
        self._leaf_names: dict[int, str] | None = None  # set by leaf_names()

    def leaf_names(self, ids: dict[int, int]) -> dict[int, str]:
        """The caller's names of the leaves; leaf0, leaf1, … for the rest (and for a name given twice).

        Kept for input_name(): an input of torch.autograd.grad that is a leaf is that leaf, under its name."""
        names: dict[int, str] = {}
        given: set[str] = set()
        used: set[str] = set(self.names.explicit)
        unnamed = 0
        leaf_vars = self.graph.leaf_vars
        for i in sorted(leaf_vars, key=ids.__getitem__):
            name = self.names.get(leaf_vars[i])
            if name is None or name in given:
                while f"leaf{unnamed}" in used:
                    unnamed += 1
                name = f"leaf{unnamed}"
            used.add(name)
            given.add(name)
            names[i] = name
        self._leaf_names = names
        return names

    def input_name(self, t: Any, k: int) -> str:
        """The name of inputs=[k]: one name per tensor, whichever way it is reached. A leaf of the graph keeps
        its leaf name (an unnamed one is leaf0, not also input1); a tensor given twice keeps its first name."""
        inputs = self.before.input_nodes
        first = next((j for j, (u, _) in enumerate(inputs[:k]) if u is t), None)
        if first is not None:
            return self.input_name(t, first)
        at = inputs[k][1] if k < len(inputs) else None
        if at is not None and at[1] == 0 and self.graph.leaf_vars.get(at[0]) is t:
            named = self._leaf_names
            if named is None:  # not numbered yet: leaves named in traversal order
                named = self.leaf_names({i: i for i in self.graph.leaf_vars})
            if at[0] in named:
                return named[at[0]]
        name = self.names.get(t) if isinstance(t, torch.Tensor) else None
        return name or f"input{k}"

    def leaves(
        self,
        ids: dict[int, int],
        leaf_names: dict[int, str],
        totals: Totals,
        done: frozenset[int],
        error: BaseException | None,
    ) -> list[LeafSpec]:
        """Every leaf: those the graph accumulates into, retained tensors, inputs=, then named tensors the pass
        did not reach; a name is taken by the first that has it."""
        leaves: dict[str, LeafSpec] = {}
        for spec in (
            *self._graph_leaves(ids, leaf_names, totals, done, error),
            *self._retained_leaves(ids, totals, done),
            *self._input_leaves(ids, totals, done),
        ):
            leaves.setdefault(spec.name, spec)
        for spec in self._unreached_leaves():
            if spec.name not in leaves:
                leaves[spec.name] = spec
        return list(leaves.values())

    def _graph_leaves(
        self,
        ids: dict[int, int],
        leaf_names: dict[int, str],
        totals: Totals,
        done: frozenset[int],
        error: BaseException | None,
    ) -> list[LeafSpec]:
        input_at = self._input_at()
        returned = not self.call.accumulate_grad
        specs = []
        for i, name in sorted(leaf_names.items(), key=lambda kv: ids[kv[0]]):
            var = self.graph.leaf_vars[i]
            k = input_at.get((i, 0))
            grad: Ref
            if returned and k is not None and k < len(totals.results):
                grad, kind = totals.results[k], "input"
            else:
                grad, kind = (StepV(node=i, slot=0) if i in done else None), "leaf"
            specs.append(
                LeafSpec(
                    name=name,
                    fields={"kind": kind, "shape": tuple(var.shape), "dtype": dtype_name(var.dtype), "node": ids[i]},
                    grad=grad,
                    grad_before=self.before.grad_before[i],
                    grad_total=totals.leaves.get(i),
                    value=self.before.leaf_values.get(i),
                    reason=self._why_no_gradient(i, input_at, done, error),
                )
            )
        return specs

    def _input_at(self) -> dict[tuple[int, int], int]:
        """(node, input_nr) -> which of inputs= sits there."""
        return {at: k for k, (_, at) in enumerate(self.before.input_nodes) if at is not None}

    def _retained_leaves(self, ids: dict[int, int], totals: Totals, done: frozenset[int]) -> list[LeafSpec]:
        return [
            LeafSpec(
                name=r.name,
                fields={
                    "kind": "retained",
                    "shape": tuple(r.tensor.shape),
                    "dtype": dtype_name(r.tensor.dtype),
                    "node": ids[r.node],
                    "input_nr": r.slot,
                },
                grad=StepV(node=r.node, slot=r.slot) if r.node in done else None,
                grad_before=r.before,
                grad_total=total,
                value=None,
                reason="no gradient reached its node",
            )
            for r, total in zip(self.before.retained, totals.retained, strict=True)
        ]

    def _input_leaves(self, ids: dict[int, int], totals: Totals, done: frozenset[int]) -> list[LeafSpec]:
        returned = not self.call.accumulate_grad
        specs = []
        for k, (t, at) in enumerate(self.before.input_nodes):
            if not isinstance(t, torch.Tensor):
                continue
            grad: Ref = totals.results[k] if returned and k < len(totals.results) else None
            if grad is None and at is not None and at[0] in done:
                grad = StepV(node=at[0], slot=at[1])
            fields = {
                "kind": "input",
                "shape": tuple(t.shape),
                "dtype": dtype_name(t.dtype),
                "node": None if at is None else ids[at[0]],
                "input_nr": 0 if at is None else at[1],
            }
            specs.append(
                LeafSpec(
                    name=self.input_name(t, k),
                    fields=fields,
                    grad=grad,
                    grad_before=None,
                    grad_total=None,
                    value=None,
                    reason="not on any path from the outputs",
                )
            )
        return specs

    def _unreached_leaves(self) -> list[LeafSpec]:
        """Tensors named by names= (or a model) that need a gradient but are not on this pass's graph."""
        reached = {id(variable) for variable in self.graph.leaf_vars.values()}
        return [
            LeafSpec(
                name=name,
                fields={"kind": "leaf", "shape": tuple(t.shape), "dtype": dtype_name(t.dtype), "node": None},
                grad=None,
                grad_before=None,
                grad_total=None,
                value=None,
                reason=NESTED_REASON if id(t) in self.nested_reached else NOT_ON_ANY_PATH,
            )
            for name, t in self.names.explicit.items()
            if id(t) not in reached and t.requires_grad
        ]

    def _why_no_gradient(
        self, i: int, input_at: dict[tuple[int, int], int], done: frozenset[int], error: BaseException | None
    ) -> str:
        if error is not None and i not in done:
            return "the pass stopped before reaching it"
        if self.call.inputs and (i, 0) not in input_at:
            return "not among the pass's inputs=, so the engine did not accumulate into it"
        if not self.call.accumulate_grad:
            return "torch.autograd.grad returns gradients instead of accumulating into .grad"
        return "no gradient reached it"

    def seeds(self, ids: dict[int, int]) -> list[SeedSpec]:
        """Every seed; shape and dtype are None when the output is not a tensor (then they come from v)."""
        seeds: list[SeedSpec] = []
        outputs, roots, handles = self.call.outputs, self.graph.roots, self.before.seed_handles
        implicit = _implicit_seeds(len(outputs))  # reads torch's frames: only possible now
        for k, out in enumerate(outputs):
            root = roots[k] if k < len(roots) else None
            tensor = out if isinstance(out, torch.Tensor) else None
            fields = {
                "index": k,
                "name": self.names.get(tensor) if tensor is not None else None,
                "target": None if root is None else ids[root[0]],
                "input_nr": 0 if root is None else root[1],
                "implicit": None if implicit is None or k >= len(implicit) else implicit[k],
            }
            seeds.append(
                SeedSpec(
                    fields=fields,
                    shape=tuple(tensor.shape) if tensor is not None else None,
                    dtype=dtype_name(tensor.dtype) if tensor is not None else None,
                    v=handles[k] if k < len(handles) else None,
                )
            )
        return seeds


def _implicit_seeds(count: int) -> list[bool] | None:
    """Which seeds torch made itself (gradient=None), read from torch.autograd.backward/grad's own frame."""
    arguments = _SEED_ARGUMENTS
    frame: Any = sys._getframe(1)
    while frame is not None:
        name = arguments.get(frame.f_code)
        if name is not None:
            given = frame.f_locals.get(name)
            if given is None:
                return [True] * count
            if isinstance(given, torch.Tensor):
                return [False] * count
            return [g is None for g in given]
        frame = frame.f_back
    return None  # called some other way: unknown
