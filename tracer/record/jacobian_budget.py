"""The per-pass budget of local Jacobians: the first nodes to run get theirs, the rest on demand or a note.

A local Jacobian costs one call of the node per element of its v (about 0.5 ms for an 8-element node), so a
chain of 20,000 small ops would spend seconds on Jacobians no picture can show. The engine runs the nodes
nearest the outputs first, so the first JACOBIAN_BUDGET small nodes in execution order are the ones a picture
draws first (the step-by-step page draws at most 200 steps). The budget counts nodes, not time: the same pass
gets the same Jacobians on every machine.

A small node past the budget gets a NoteKind.BUDGET note. When the pass kept its graph (retain_graph=True or
create_graph=True) the node can still be called: its Step then computes J when `step.jacobian` (or
`step.check`) is first read, from the v and vᵀJ the trace recorded; the trace holds those nodes until then.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from ..model.records import NoteKind, Step, TensorInfo
from .local_jacobian import LocalResult, local_jacobian

JACOBIAN_BUDGET = 200  # local Jacobians computed during one pass (nodes nearest the outputs first)

_LATER_FIELDS = ("jacobian", "check", "note", "note_kind")


class JacobianBudget:
    """How many local Jacobians this pass may still compute, and (once spent) the nodes kept for later."""

    __slots__ = ("count", "left", "nodes", "spent", "spent_note")

    def __init__(self, count: int | None = None) -> None:
        self.count = JACOBIAN_BUDGET if count is None else count
        self.left = self.count
        self.spent = False  # a small node came after the budget ran out
        self.nodes: Sequence[Any] | None = None  # every node of the pass, kept when the graph was retained
        self.spent_note: LocalResult | None = None  # one record shared by the nodes past the budget: same words

    def take(self) -> bool:
        """Whether the node running now may compute its local Jacobian (and counts it)."""
        if self.left > 0:
            self.left -= 1
            return True
        self.spent = True
        return False

    def keep_nodes(self, fns: Sequence[Any], keep_graph: bool) -> JacobianBudget | None:
        """At the end of the pass: what building the trace needs (None when the budget was never spent). The
        nodes are kept only when the graph was retained: otherwise the engine freed what they saved."""
        if not self.spent:
            return None
        if keep_graph:
            self.nodes = list(fns)
        self.spent_note = LocalResult(jacobian=None, check=None, note=self._note(False), note_kind=NoteKind.BUDGET)
        return self

    def unspent(
        self, i: int, name: str, v: tuple[TensorInfo | None, ...], vjp: tuple[TensorInfo | None, ...], limit: int
    ) -> LocalResult | None:
        """The budget note of node i, when it was small enough for its local Jacobian; None otherwise. Called
        for every node past the budget (20,000 in a long chain): kept to a few lookups."""
        if name == "AccumulateGrad" or not _fits(v, limit) or not _fits(vjp, limit):
            return None
        fn = self.nodes[i] if self.nodes is not None else None
        if fn is not None and all(t is None or t.values is not None for t in (*v, *vjp)):
            return LocalResult(
                jacobian=None, check=None, note=self._note(True), note_kind=NoteKind.BUDGET, later=Later(fn, limit)
            )
        return self.spent_note

    def _note(self, later: bool) -> str:
        spent = (
            f"past this pass's budget of {self.count} local Jacobians (the nodes nearest the output get theirs first)"
        )
        if later:
            return f"J not computed during the pass: {spent}; computed when step.jacobian is first read"
        return f"J not computed: {spent}; record with retain_graph=True to compute it when read, or use tracer.jacobian"


_NUMEL: dict[tuple[int, ...], int] = {}  # shape -> element count: a long chain repeats a handful of shapes


def _fits(infos: tuple[TensorInfo | None, ...], limit: int) -> bool:
    """As the hooks decide: some gradient present, at most `limit` elements together, none of them empty."""
    total = 0
    for t in infos:
        if t is not None:
            shape = t.shape
            n = _NUMEL.get(shape)
            if n is None:
                n = _NUMEL[shape] = math.prod(shape)
            total += n
    return 0 < total <= limit


class Later:
    """A node past the budget whose graph was retained: its J, computed once when its Step is first asked."""

    __slots__ = ("fn", "limit")

    def __init__(self, fn: Any, limit: int) -> None:
        self.fn = fn
        self.limit = limit

    def step(self, **fields: Any) -> Step:
        step = LaterStep(**fields)
        object.__setattr__(step, "_later", self)
        return step

    def compute(self, v: tuple[TensorInfo | None, ...], vjp: tuple[TensorInfo | None, ...]) -> LocalResult:
        """J from calls of the kept node with one-hot v's, checked against the v and vᵀJ the pass recorded."""
        grad_outputs = tuple(None if t is None else _tensor(t) for t in v)
        grad_inputs = tuple(None if t is None else _tensor(t) for t in vjp)
        local = local_jacobian(self.fn, grad_outputs, grad_inputs, self.limit)
        if local is None:  # cannot happen for a node that fit during the pass; say so rather than guess
            return LocalResult(
                jacobian=None, check=None, note="no Jacobian: the node no longer fits", note_kind=NoteKind.NO_JACOBIAN
            )
        return local


def _tensor(info: TensorInfo) -> torch.Tensor:
    t: torch.Tensor = info.as_tensor()
    return t if info.device == "cpu" else t.to(info.device)


class LaterStep(Step):
    """A Step whose local Jacobian is computed when first read (see the module notes). Reading jacobian or check
    computes it; note and note_kind say "computed when first read" until then."""

    __slots__ = ("_later",)

    def _resolve(self) -> None:
        later: Later | None = getattr(self, "_later", None)
        if later is None:
            return
        object.__setattr__(self, "_later", None)  # once, even when the call fails
        try:
            local = later.compute(self.v, self.vjp)
        except Exception as exc:  # a node that can no longer be called: say why, never raise from a read
            local = LocalResult(
                jacobian=None,
                check=None,
                note=f"no Jacobian: calling {self.name} after the pass raised {type(exc).__name__}: {exc}",
                note_kind=NoteKind.NO_JACOBIAN,
            )
        _SET["jacobian"](self, local.jacobian)
        _SET["check"](self, local.check)
        _SET["note"](self, local.note)
        _SET["note_kind"](self, local.note_kind)


def _computing(name: str) -> property:
    slot = Step.__dict__[name]  # the dataclass's slot descriptor: where the value lives

    def get(self: LaterStep) -> Any:
        if name in ("jacobian", "check"):
            self._resolve()
        return slot.__get__(self, Step)

    def put(self: LaterStep, value: Any) -> None:
        slot.__set__(self, value)  # the dataclass's __init__ (and _resolve) write through here

    return property(get, put)


_SET = {name: Step.__dict__[name].__set__ for name in _LATER_FIELDS}
for _name in _LATER_FIELDS:
    setattr(LaterStep, _name, _computing(_name))
