"""The module view as data: the pass collapsed by nn.Module path at a depth, with the gradient at every boundary.

Each node tagged with a module (Step.module) goes into the box of its module's ancestor at `depth` (counted from
the model's root). A box shows what its module received (the gradient entering: what its nodes got from nodes
outside it), what it sent on (the gradient leaving: what it sent to nodes outside it), its parameters' gradient
norms and its node count; these always describe the whole module, also when focus= draws only part of it.
Numbered siblings of one class (a transformer's layers) become one run box with a row per block. Untagged
nodes (the loss) stay ordinary nodes. A module opened by focus= is drawn one level deeper: its children as
boxes and its own operations (those not inside a child) as ordinary nodes inside its cluster. Every edge
between two drawn things carries the gradient of all the recorded edges it stands for (see flow_norm.py).
Everything here is linear in the size of the trace.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Literal

from ..model.records import Leaf, Shape, TensorInfo, Trace
from .flow_norm import FlowNorm, combine, info_norm, slot_norm
from .focus import Focus
from .graph import Inflow, Slot, inflows, node_key, seed_key
from .module_tree import ModuleTree, Run, natural_key
from .naming import seed_ref, step_label, step_ref

OWN_OPS_INLINE = 8  # an opened module's own operations are drawn one by one up to this many (else one box)
FlowKind = Literal["grad", "none", "pending"]


@dataclass(frozen=True)
class Crossing:
    """The gradient of one target slot at a module's boundary (what its tooltip lists)."""

    node: int  # the receiving node
    slot: int
    senders: tuple[str, ...]  # 'seed y', 'step 12', …
    norm: FlowNorm
    shape: Shape | None


@dataclass(frozen=True)
class ParamGrad:
    """A leaf inside a module: a parameter (.grad, or a torch.autograd.grad input) or a retain_grad() tensor."""

    name: str
    kind: str
    shape: Shape
    norm: float | None
    reason: str | None = None

    @property
    def parameter(self) -> bool:
        return self.kind in ("leaf", "input")


@dataclass(frozen=True)
class Box:
    """One module collapsed (or, with `own`, only the operations of an opened module that are not in a child)."""

    key: str  # DOT id
    path: str
    cls: str
    own: bool
    members: tuple[int, ...]  # every node of the module in this pass
    shown: int  # how many of them are drawn (fewer under focus=)
    entering: FlowNorm
    leaving: FlowNorm
    params: tuple[ParamGrad, ...]
    params_norm: FlowNorm
    entries: tuple[Crossing, ...]
    exits: tuple[Crossing, ...]
    not_run: int
    cut: int  # next edges into inputs that need no gradient
    order: int  # where it sits in execution order (its first drawn node)
    openable: bool  # it has child modules with nodes: focus= on it shows them

    @property
    def node_count(self) -> int:
        return len(self.members)


@dataclass(frozen=True)
class RunBox:
    """A run of repeated blocks drawn as one box, each block summarised on its own row."""

    key: str
    run: Run
    blocks: tuple[Box, ...]  # in backward order: the block the gradient reaches first comes first
    entering: FlowNorm
    leaving: FlowNorm
    params_norm: FlowNorm
    order: int

    @property
    def node_count(self) -> int:
        return sum(b.node_count for b in self.blocks)

    @property
    def param_count(self) -> int:
        return sum(1 for b in self.blocks for p in b.params if p.parameter)


@dataclass(frozen=True)
class Flow:
    """An edge of the view: every recorded edge from one drawn thing to another, combined."""

    key: str
    source: str  # DOT id of the sender (a seed, a node, a box or a run)
    target: str
    norm: FlowNorm
    kind: FlowKind
    single: TensorInfo | None  # the gradient itself when the flow is one recorded edge
    parts: tuple[str, ...]  # 'step 12 → step 13' for the tooltip


@dataclass(frozen=True)
class ModuleView:
    """What the module view draws, in drawing order."""

    depth: int
    deepest: int
    boxes: tuple[Box, ...]  # boxes not inside a run
    runs: tuple[RunBox, ...]
    nodes: tuple[int, ...]  # drawn as ordinary nodes (untagged, or own operations of an opened module)
    seeds: tuple[int, ...]  # seed indexes drawn
    unreached: tuple[Leaf, ...]  # leaves without gradient that belong to no box
    flows: tuple[Flow, ...]
    clusters: tuple[tuple[str, str | None], ...]  # (module path, enclosing cluster) outermost first
    home: dict[str, str | None]  # DOT id of each box, run and node -> the cluster it is drawn in (None: top)
    focus: Focus | None
    classes: dict[str, str]

    def item_count(self) -> int:
        """Things Graphviz lays out (seeds, nodes, boxes, runs, unreached leaves; constants are added by the DOT)."""
        return len(self.seeds) + len(self.nodes) + len(self.boxes) + len(self.runs) + len(self.unreached)

    def norms(self) -> list[float | None]:
        """Every norm the view shows, for the colour scale."""
        out: list[float | None] = []
        for b in (*self.boxes, *(b for r in self.runs for b in r.blocks)):
            out += [b.entering.norm, b.leaving.norm]
        for r in self.runs:
            out += [r.entering.norm, r.leaving.norm]
        out += [f.norm.norm for f in self.flows]
        return out


class _Trace:
    """Lookups over the whole trace, made once: what enters each slot, nodes by module, leaves by node."""

    def __init__(self, trace: Trace, tree: ModuleTree) -> None:
        self.trace = trace
        self.tree = tree
        self.incoming: dict[Slot, list[Inflow]] = inflows(trace)
        self.slots: dict[int, list[int]] = {}
        for node, slot in self.incoming:
            self.slots.setdefault(node, []).append(slot)
        self.by_module: dict[str, list[int]] = {}
        for n in trace.nodes:
            if n.module is not None:
                self.by_module.setdefault(n.module, []).append(n.id)
        self.leaves_at: dict[int, list[Leaf]] = {}
        for leaf in trace.leaves.values():
            if leaf.node is not None:
                self.leaves_at.setdefault(leaf.node, []).append(leaf)

    def members(self, path: str, own: bool) -> list[int]:
        if own:
            return list(self.by_module.get(path, ()))
        out: list[int] = []
        for p in self.tree.descendants(path):
            out.extend(self.by_module.get(p, ()))
        return sorted(out)

    def sender(self, inflow: Inflow) -> str:
        """Who sent a gradient, as a boundary's tooltip lists it: 'seed y' (or 'seed 0'), 'step 12', 'node 7'."""
        if inflow.seed is not None:
            return seed_ref(self.trace.seeds[inflow.seed])
        assert inflow.source is not None
        return step_ref(self.trace.node(inflow.source))


class _Collapse:
    """Which module's box holds the nodes of a module: its first ancestor at the depth, unless that one is opened."""

    def __init__(self, tree: ModuleTree, level: int, opened: set[str]) -> None:
        self.tree = tree
        self.level = level
        self.opened = opened
        self.cache: dict[str, str] = {}

    def __call__(self, module: str) -> str:
        key = self.cache.get(module)
        if key is None:
            key = self.cache[module] = self._holder(module)
        return key

    def _holder(self, module: str) -> str:
        tree = self.tree
        return next((c for c in tree.chain(module) if tree.depth(c) >= self.level and c not in self.opened), module)


@dataclass
class _Layout:
    """What is drawn where, filled in by the steps of build()."""

    nodes: list[int]  # node ids drawn one by one (untagged, or own operations of an opened module)
    boxes: dict[str, Box] = field(default_factory=dict)  # by module path
    runs: list[RunBox] = field(default_factory=list)
    holder: dict[int, str] = field(default_factory=dict)  # node id -> DOT id of the box or run drawing it
    home: dict[str, str | None] = field(default_factory=dict)  # DOT id -> module whose cluster holds it

    def items(self) -> dict[int, str]:
        """Every drawn node id -> the DOT id of what draws it: its box or run, or the node itself."""
        item = dict(self.holder)
        for i in self.nodes:
            item[i] = node_key(i)
        return item


def build(
    trace: Trace,
    *,
    depth: int | None = None,
    focus: Focus | None = None,
    repeats: str = "compact",
    tree: ModuleTree | None = None,
) -> ModuleView:
    """The module view of a pass (see the module docstring). Needs module tags (tracer.record(model=...))."""
    tree = tree if tree is not None else ModuleTree(trace)
    data = _Trace(trace, tree)
    level = tree.default_depth() if depth is None else depth
    target = focus.module if focus is not None else None  # opened, with every module around it
    shown = focus.shown if focus is not None else None
    collapse = _Collapse(tree, level, set(tree.chain(target)) if target is not None else set())
    groups, untagged = _group(trace, shown, collapse)
    layout = _place(data, groups, untagged, target)
    attached = _attach_unreached(data, layout.boxes, collapse) if shown is None else set()
    if repeats == "compact":
        _compact_runs(data, layout)
    seeds = tuple(s.index for s in trace.seeds if shown is None or s.target in shown)
    unreached = tuple(
        leaf for leaf in trace.leaves.values() if shown is None and leaf.node is None and leaf.name not in attached
    )
    clusters = _clusters(tree, layout.home, focus)
    kept = {m for m, _ in clusters}
    return ModuleView(
        depth=min(level, tree.deepest),
        deepest=tree.deepest,
        boxes=tuple(sorted(layout.boxes.values(), key=lambda b: b.order)),
        runs=tuple(sorted(layout.runs, key=lambda r: r.order)),
        nodes=tuple(sorted(layout.nodes)),
        seeds=seeds,
        unreached=unreached,
        flows=_flows(data, layout.items(), seeds),
        clusters=clusters,
        home={key: _innermost(tree, module, kept) for key, module in layout.home.items()},
        focus=focus,
        classes=tree.classes,
    )


def _group(trace: Trace, shown: frozenset[int] | None, collapse: _Collapse) -> tuple[dict[str, list[int]], list[int]]:
    """The drawn nodes by the module whose box holds them, and the untagged ones (the loss), in id order."""
    groups: dict[str, list[int]] = {}
    untagged: list[int] = []
    for n in trace.nodes:
        if shown is not None and n.id not in shown:
            continue
        if n.module is None:
            untagged.append(n.id)
        else:
            groups.setdefault(collapse(n.module), []).append(n.id)
    return groups, untagged


def _place(data: _Trace, groups: dict[str, list[int]], untagged: list[int], target: str | None) -> _Layout:
    """A box per group, except the own operations of an opened module: those are drawn one by one inside its
    cluster (when the module is the focused one, or they are few)."""
    tree = data.tree
    layout = _Layout(nodes=list(untagged), home=dict.fromkeys(map(node_key, untagged)))
    containers = {a for k in groups for a in tree.chain(k)[:-1]}
    for path in sorted(groups, key=natural_key):
        ids = groups[path]
        focused = path == target
        own = path in containers or focused
        if own and (focused or len(ids) <= OWN_OPS_INLINE):
            layout.nodes.extend(ids)
            layout.home.update(dict.fromkeys(map(node_key, ids), path))
            continue
        box = _box(data, f"m{len(layout.boxes) + 1}", path, own, ids)
        layout.boxes[path] = box
        layout.holder.update(dict.fromkeys(ids, box.key))
        layout.home[box.key] = path if own else tree.parent(path)
    return layout


def _compact_runs(data: _Trace, layout: _Layout) -> None:
    """Numbered sibling boxes of one class (a transformer's layers) become one run box, a row per block."""
    closed = [p for p, b in layout.boxes.items() if not b.own]
    for run in data.tree.runs(closed):
        blocks = [layout.boxes.pop(p) for p in run.paths]
        key = f"r{len(layout.runs) + 1}"
        layout.runs.append(_run_box(data, key, run, blocks))
        for b in blocks:
            for i in b.members:
                if layout.holder.get(i) == b.key:
                    layout.holder[i] = key
            del layout.home[b.key]
        layout.home[key] = run.parent


def _box(data: _Trace, key: str, path: str, own: bool, shown: list[int]) -> Box:
    members = data.members(path, own)
    inside = set(members)
    entering, entries = _entering(data, inside)
    leaving, exits = _leaving(data, inside)
    params: list[ParamGrad] = []
    for i in members:
        for leaf in data.leaves_at.get(i, ()):
            params.append(ParamGrad(leaf.name, leaf.kind, leaf.shape, info_norm(leaf.grad), leaf.reason))
    params.sort(key=lambda p: natural_key(p.name))
    nodes = [data.trace.node(i) for i in members]
    tree = data.tree
    return Box(
        key=key,
        path=path,
        cls=tree.classes.get(path, "?"),
        own=own,
        members=tuple(members),
        shown=len(shown),
        entering=entering,
        leaving=leaving,
        params=tuple(params),
        params_norm=_params_norm(params),
        entries=entries,
        exits=exits,
        not_run=sum(1 for n in nodes if not n.executed),
        cut=sum(1 for n in nodes for e in n.edges if e.target is None),
        order=min(shown),
        openable=not own and any(data.by_module.get(c) for c in tree.descendants(path) if c != path),
    )


def _params_norm(params: Iterable[ParamGrad]) -> FlowNorm:
    return combine(FlowNorm(p.norm, 1) for p in params if p.parameter)


def _entering(data: _Trace, inside: set[int]) -> tuple[FlowNorm, tuple[Crossing, ...]]:
    """What the module's nodes received from outside it (seeds included), per receiving slot."""
    crossings = []
    for t in sorted(inside):
        for slot in sorted(data.slots.get(t, ())):
            parts = data.incoming[(t, slot)]
            outside = [p for p in parts if p.source is None or p.source not in inside]
            if outside:
                crossings.append(_crossing(data, t, slot, outside, len(parts)))
    return combine(c.norm for c in crossings), tuple(crossings)


def _leaving(data: _Trace, inside: set[int]) -> tuple[FlowNorm, tuple[Crossing, ...]]:
    """What the module's nodes sent to nodes outside it, per receiving slot."""
    out: dict[Slot, list[Inflow]] = {}
    for u in sorted(inside):
        n = data.trace.node(u)
        for k, e in enumerate(n.edges):
            if e.target is not None and e.target not in inside:
                grad = n.vjp[k] if k < len(n.vjp) else None
                out.setdefault((e.target, e.input_nr), []).append(Inflow(grad, source=u, edge=k))
    crossings = [
        _crossing(data, t, slot, parts, len(data.incoming[(t, slot)])) for (t, slot), parts in sorted(out.items())
    ]
    return combine(c.norm for c in crossings), tuple(crossings)


def _crossing(data: _Trace, target: int, slot: int, parts: list[Inflow], all_parts: int) -> Crossing:
    grads = [p.grad for p in parts]
    shape = next((g.shape for g in grads if g is not None), None)
    norm = slot_norm(data.trace.node(target), slot, grads, all_parts)
    return Crossing(target, slot, tuple(data.sender(p) for p in parts), norm, shape)


def _run_box(data: _Trace, key: str, run: Run, blocks: list[Box]) -> RunBox:
    inside = {i for b in blocks for i in b.members}
    entering, _ = _entering(data, inside)
    leaving, _ = _leaving(data, inside)
    backward = sorted(blocks, key=lambda b: b.order)
    return RunBox(
        key=key,
        run=run,
        blocks=tuple(backward),
        entering=entering,
        leaving=leaving,
        params_norm=_params_norm(p for b in blocks for p in b.params),
        order=min(b.order for b in blocks),
    )


def _attach_unreached(data: _Trace, boxes: dict[str, Box], collapse: Callable[[str], str]) -> set[str]:
    """Parameters that got no gradient have no node; they belong to the box of the module named in their name."""
    attached = set()
    for leaf in data.trace.leaves.values():
        if leaf.node is not None:
            continue
        module = leaf.name.rpartition(".")[0]
        if module not in data.tree:
            continue
        path = collapse(module)
        box = boxes.get(path)
        if box is not None and (not box.own or path == module):
            extra = ParamGrad(leaf.name, leaf.kind, leaf.shape, None, leaf.reason or "not reached")
            params = tuple(sorted((*box.params, extra), key=lambda p: natural_key(p.name)))
            boxes[path] = replace(box, params=params, params_norm=_params_norm(params))
            attached.add(leaf.name)
    return attached


def _flows(data: _Trace, item: dict[int, str], seeds: tuple[int, ...]) -> tuple[Flow, ...]:
    """One flow per (sender, receiver) pair of drawn things; each combines its recorded edges slot by slot."""
    pairs: dict[tuple[str, str], dict[tuple[int, int], list[tuple[str, TensorInfo | None]]]] = {}
    ran: dict[tuple[str, str], bool] = {}
    for index in seeds:
        s = data.trace.seeds[index]
        if s.target is None or s.target not in item:
            continue
        pair = (seed_key(index), item[s.target])
        pairs.setdefault(pair, {}).setdefault((s.target, s.input_nr), []).append((f"seed → {s.target}", s.v))
        ran[pair] = True
    for n in data.trace.nodes:
        if n.id not in item:
            continue
        source = item[n.id]
        for k, e in enumerate(n.edges):
            if e.target is None or e.target not in item:  # item holds exactly the drawn nodes
                continue
            target = item[e.target]
            if target == source:
                continue
            grad = n.vjp[k] if k < len(n.vjp) else None
            pair = (source, target)
            label = f"{step_label(n)} → {step_label(data.trace.node(e.target))}"
            pairs.setdefault(pair, {}).setdefault((e.target, e.input_nr), []).append((label, grad))
            ran[pair] = ran.get(pair, False) or n.executed
    flows = []
    for number, ((source, target), slots) in enumerate(pairs.items(), start=1):
        norms = [
            slot_norm(data.trace.node(t), s, [g for _, g in parts], len(data.incoming[(t, s)]))
            for (t, s), parts in sorted(slots.items())
        ]
        everything = [p for parts in slots.values() for p in parts]
        norm = combine(norms)
        kind: FlowKind = "pending" if not ran[(source, target)] else ("grad" if norm.norm is not None else "none")
        single = everything[0][1] if len(everything) == 1 else None
        flows.append(Flow(f"f{number}", source, target, norm, kind, single, tuple(label for label, _ in everything)))
    return tuple(flows)


def _clusters(tree: ModuleTree, home: dict[str, str | None], focus: Focus | None) -> tuple[tuple[str, str | None], ...]:
    """The module clusters worth drawing: those holding at least two things (or the focused module), each with
    the cluster it sits in. A chain of clusters around one thing only repeats the box's own path."""
    entries: dict[str, int] = {}
    for module in home.values():
        if module is not None:
            for a in tree.chain(module):
                entries.setdefault(a, 0)
            entries[module] += 1
    for module in list(entries):
        parent = tree.parent(module)
        if parent is not None:
            entries[parent] += 1
    keep = {m for m, count in entries.items() if count >= 2 or (focus is not None and focus.module == m)}
    out: list[tuple[str, str | None]] = []
    for module in sorted(entries, key=lambda m: (tree.depth(m), natural_key(m))):
        if module in keep:
            parent = next((a for a in reversed(tree.chain(module)[:-1]) if a in keep), None)
            out.append((module, parent))
    return tuple(out)


def _innermost(tree: ModuleTree, module: str | None, kept: set[str]) -> str | None:
    """The innermost drawn cluster at or above `module`."""
    if module is None:
        return None
    return next((a for a in reversed(tree.chain(module)) if a in kept), None)
