"""What a pass saw, as plain data: handed from its end (harvest.py) to building its Trace (trace_builder.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

from ..model.records import Options
from .jacobian_budget import JacobianBudget
from .local_jacobian import LocalResult
from .native.table import NativeTable
from .pass_graph import NodeEdges
from .pass_hooks import Handles
from .tensors import TensorTable


class StepV(NamedTuple):
    """A gradient as it arrived at a node: that step's v[slot], known once the steps are built."""

    node: int
    slot: int


Ref = int | StepV | None  # a TensorInfo to be: a table handle, a step's v, or nothing


class LeafSpec(NamedTuple):
    """A leaf before its tensors are summarised: its plain fields, and refs to what build resolves."""

    name: str
    fields: dict[str, Any]  # kind, shape, dtype, node (and input_nr): Leaf's plain fields
    grad: Ref
    grad_before: Ref
    grad_total: Ref
    value: Ref
    reason: str  # why it may get no gradient


class SeedSpec(NamedTuple):
    """A seed before its tensor is summarised; shape and dtype are None when the output is not a tensor (then
    they come from v)."""

    fields: dict[str, Any]  # index, name, target, input_nr, implicit: Seed's plain fields
    shape: tuple[int, ...] | None
    dtype: str | None
    v: int | None


@dataclasses.dataclass(frozen=True)
class PassSeen:
    """Everything the Trace is built from, read at the end of the pass while the graph was alive. Per node
    (traversal order) unless noted; the tensors are handles into `table`, summarised when the trace is built."""

    table: TensorTable | NativeTable
    node_handles: Callable[[], tuple[Sequence[Handles], Sequence[Handles]]]  # v and vᵀJ handles per node
    names: list[str]
    types: list[type]
    edges: list[NodeEdges]
    local: Mapping[int, LocalResult]
    grad_before: Mapping[int, int | None]  # AccumulateGrad node -> handle of .grad before the pass
    sources: Mapping[int, str]
    modules: Mapping[int, tuple[str, str]]  # node -> (module path, class)
    ids: Mapping[int, int]  # node -> step id
    done: frozenset[int]  # the nodes that ran
    failing: int | None  # the node that raised
    error: str | None
    totals: Mapping[int, int | None]  # AccumulateGrad node -> handle of .grad after the pass
    leaf_names: Mapping[int, str]
    leaves: list[LeafSpec]
    seeds: list[SeedSpec]
    kind: Literal["backward", "grad"]
    options: Options
    source: str | None  # where the pass was started
    module_classes: Mapping[str, str]  # the recording model's hierarchy
    notes: tuple[str, ...]
    rank: int | None
    budget: JacobianBudget | None = None  # once spent: which small nodes get a budget note (jacobian_budget.py)
