"""Build a pass's Trace from what it saw (PassSeen): when the trace is first read, not inside the user's pass."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch

from ..model.records import Edge, Leaf, NoteKind, Seed, Step, TensorInfo, Trace
from .local_jacobian import LocalResult
from .node_ops import describe_node
from .pass_hooks import Handles
from .pass_seen import LeafSpec, PassSeen, Ref, SeedSpec, StepV

Arrived = dict[int, tuple[TensorInfo | None, ...]]  # node -> the v its step shows


def build_trace(seen: PassSeen) -> Trace:
    """Thousands of table entries become TensorInfo and Steps here. Call once: the table is emptied."""
    v_handles, vjp_handles = seen.node_handles()  # before finish(): the native table lets go of them there
    infos = seen.table.finish()
    steps, arrived = _steps(seen, infos, v_handles, vjp_handles)
    resolve = _Resolver(infos, arrived)
    modules = {**seen.module_classes, **dict(seen.modules.values())}
    return Trace(
        kind=seen.kind,
        seeds=tuple([_seed(spec, resolve) for spec in seen.seeds]),
        nodes=tuple(steps),
        leaves={spec.name: _leaf(spec, resolve) for spec in seen.leaves},
        options=seen.options,
        source=seen.source,
        complete=seen.error is None,
        error=seen.error,
        notes=seen.notes,
        torch_version=torch.__version__,
        modules=dict(sorted(modules.items())),
        rank=seen.rank,
    )


@functools.lru_cache(maxsize=65536)
def _edge(target: int | None, input_nr: int) -> Edge:
    return Edge(target=target, input_nr=input_nr)  # edges repeat a lot and are immutable: share them


def _steps(
    seen: PassSeen, infos: list[TensorInfo], v_handles: Sequence[Handles], vjp_handles: Sequence[Handles]
) -> tuple[list[Step], Arrived]:
    """Every node's Step in step-id order, and the v each one shows (leaves and retained tensors refer to it)."""
    infos_or_none = [*infos, None]  # index -1 (a missing handle) gives None: no call per tensor
    ids, names, locals_, modules, sources = seen.ids, seen.names, seen.local, seen.modules, seen.sources
    steps = []
    arrived: Arrived = {}
    for i in sorted(range(len(names)), key=ids.__getitem__):
        local = locals_.get(i)
        v = tuple([infos_or_none[-1 if k is None else k] for k in v_handles[i]])
        if i in seen.totals and seen.grad_before[i] is None and v and v[0] is not None:
            total = seen.totals[i]
            v = (_same_as(v[0], None if total is None else infos[total]),)
        arrived[i] = v
        vjp = tuple([infos_or_none[-1 if k is None else k] for k in vjp_handles[i]])
        if local is None and seen.budget is not None and i in seen.done:
            local = seen.budget.unspent(i, names[i], v, vjp, seen.options.jacobian_limit)
        op, note, note_kind = _op_and_note(seen, i, local)
        module = modules.get(i)
        make = Step if local is None or local.later is None else local.later.step
        steps.append(
            make(
                id=ids[i],
                name=names[i],
                op=op,
                executed=i in seen.done or i == seen.failing,
                v=v,
                vjp=vjp,
                edges=tuple([_edge(None if t < 0 else ids[t], nr) for t, nr in seen.edges[i]]),
                jacobian=local.jacobian if local else None,
                check=local.check if local else None,
                source=sources.get(i),
                module=module[0] if module else None,
                leaf=seen.leaf_names.get(i),
                note=note,
                note_kind=note_kind,
            )
        )
    return steps, arrived


def _op_and_note(seen: PassSeen, i: int, local: LocalResult | None) -> tuple[str, str | None, NoteKind | None]:
    """The node's forward op in plain words, and why something about it is missing (and what kind of note that
    is): the error it raised, what hides its steps, or why its Jacobian is not shown."""
    op, op_note = describe_node(seen.types[i], seen.names[i])
    if local is not None and local.saved is not None:
        op = f"{op}({local.saved})"  # a small node also shows what its forward call saved
    if i == seen.failing:
        return (op, f"raised {seen.error}", NoteKind.RAISED) if seen.error is not None else (op, None, None)
    if op_note is not None:
        return op, op_note, NoteKind.COMPILED
    if local is None or local.note is None:
        return op, None, None
    return op, local.note, local.note_kind


def _same_as(added: TensorInfo, total: TensorInfo | None) -> TensorInfo:
    """A leaf that had no .grad before keeps exactly what arrived: report the added gradient with the total's
    exact norm, when the two records agree on everything they both read (a post-accumulate hook may not have
    changed .grad since)."""
    if total is None or total.shape != added.shape or total.stats is None or added.stats is None:
        return added
    a, t = added.stats, total.stats
    same_sample = (a.min, a.max, a.mean, a.zeros, a.sampled) == (t.min, t.max, t.mean, t.zeros, t.sampled)
    if added.values != total.values or not same_sample or a.norm_exact:
        return added
    return total


class _Resolver:
    """A Ref made a TensorInfo, once the table is summarised and the steps are built."""

    def __init__(self, infos: list[TensorInfo], arrived: Arrived) -> None:
        self.infos = infos
        self.arrived = arrived

    def __call__(self, ref: Ref) -> TensorInfo | None:
        if ref is None:
            return None
        if isinstance(ref, StepV):
            v = self.arrived.get(ref.node, ())
            return v[ref.slot] if ref.slot < len(v) else None
        return self.infos[ref]


def _leaf(spec: LeafSpec, resolve: _Resolver) -> Leaf:
    grad = resolve(spec.grad)
    return Leaf(
        name=spec.name,
        grad=grad,
        grad_before=resolve(spec.grad_before),
        grad_total=resolve(spec.grad_total),
        value=resolve(spec.value),
        reason=None if grad is not None else spec.reason,
        **spec.fields,
    )


def _seed(spec: SeedSpec, resolve: _Resolver) -> Seed:
    v = resolve(spec.v)
    return Seed(
        shape=spec.shape if spec.shape is not None else (v.shape if v is not None else ()),
        dtype=spec.dtype if spec.dtype is not None else (v.dtype if v is not None else ""),
        v=v,
        **spec.fields,
    )
