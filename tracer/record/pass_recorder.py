"""One backward pass: walk its graph, hook every node, and turn what the hooks saw into a Trace.

Only post-hooks are used: they run right after a node, with both the v it consumed and the vᵀJ it produced,
in the engine's execution order, and registering them costs a quarter of what pre-hooks cost. The
recorder's budget is the backward pass itself, so the hooks only snapshot (tensors.TensorTable, or the
same table in C++ when the native recorder is built: native/loader.py), `harvest` reads what must be read while
the graph is alive, and `build` — turning thousands of records into the Trace — runs when it is first read.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import sys
import threading
from collections import deque
from collections.abc import Collection, Sequence
from typing import Any, Literal, NamedTuple

import torch

from ..model.records import Edge, Leaf, Options, Seed, Step, TensorInfo, Trace
from .gradient_edges import gradient_edge
from .local_jacobian import LocalResult, local_jacobian
from .modules import ever_tagged, module_tag
from .names import NameBook
from .native.loader import load as native_recorder
from .native.table import NativeTable
from .tensors import SAMPLE_BLOCK, SAMPLE_SIZE, TensorTable, dtype_name

ACCUMULATE = "AccumulateGrad"


@dataclasses.dataclass
class BackwardCall:
    """One call of the engine's run_backward, parsed."""

    outputs: tuple[Any, ...]
    grads: tuple[Any, ...]
    keep_graph: bool
    create_graph: bool
    inputs: tuple[Any, ...]
    accumulate_grad: bool

    @classmethod
    def parse(cls, args: tuple[Any, ...], kwargs: dict[str, Any]) -> BackwardCall:
        names = ("tensors", "grad_tensors", "keep_graph", "create_graph", "inputs", "allow_unreachable")
        bound = dict(zip(names, args, strict=False))
        bound.update(kwargs)
        return cls(
            outputs=tuple(bound.get("tensors") or bound.get("t_outputs") or ()),
            grads=tuple(bound.get("grad_tensors") or ()),
            keep_graph=bool(bound.get("keep_graph", False)),
            create_graph=bool(bound.get("create_graph", False)),
            inputs=tuple(bound.get("inputs") or ()),
            accumulate_grad=bool(bound.get("accumulate_grad", True)),
        )


_NAMED_FAILURE = re.compile(r"Function '(\w+)' returned nan values")  # anomaly mode, after the node ran
_BACKWARD_SUFFIX = re.compile(r"Backward\d*$")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


@functools.lru_cache(maxsize=4096)
def _op_from_name(name: str) -> str:
    if name == ACCUMULATE:
        return "leaf: accumulate into .grad"
    if name == "CopySlices":
        return "in-place write into a slice (y[i] = ...)"
    base = _BACKWARD_SUFFIX.sub("", name)
    return _CAMEL.sub("_", base).lower() if base != name else name


NESTED_REASON = (
    "not on this pass's graph, but it got its gradient in a nested backward pass that a node of this pass "
    "started (a reentrant torch.utils.checkpoint does this): see the pass recorded after this one"
)
COMPILED_OP = "torch.compile: a compiled region, its whole backward in one node"
COMPILED_NOTE = (
    "torch.compile runs the backward of this compiled region as one function: the steps inside it are not "
    "visible and its Jacobian is not computed; run the model without torch.compile to see them"
)


def _is_compiled(forward_cls: Any) -> bool:
    """A torch.compile'd region: AOTAutograd puts its whole backward into one CompiledFunction node."""
    return bool(forward_cls.__name__ == "CompiledFunction" and forward_cls.__module__.startswith("torch._functorch"))


@functools.lru_cache(maxsize=4096)
def describe_node(node_type: type, name: str) -> tuple[str, str | None]:
    """The forward operation a backward node came from, in plain words, and a note when the node hides its
    steps (torch.compile). A custom Function's nodes are instances of its own backward class, which names the
    Function (`_forward_cls`); torch's C++ nodes have none: so the type tells, and is asked once."""
    forward_cls = getattr(node_type, "_forward_cls", None)
    if forward_cls is None:
        return _op_from_name(name), None
    if _is_compiled(forward_cls):
        return COMPILED_OP, COMPILED_NOTE
    return f"{forward_cls.__name__}.apply", None


def _anomaly_source(node: Any) -> str | None:
    """The forward line from anomaly mode's traceback, when the user turned it on for the forward."""
    try:
        stack = node.metadata.get("traceback_")
    except Exception:
        return None
    if not stack:
        return None
    for entry in reversed(stack):
        match = re.search(r'File "([^"]+)", line (\d+)', entry)
        if match and "/torch/" not in match.group(1).replace("\\", "/"):
            return f"{match.group(1)}:{match.group(2)}"
    return None


def _fits(tensors: tuple[torch.Tensor | None, ...], limit: int) -> bool:
    """Whether these gradients have at most `limit` elements together (the Jacobian size limit)."""
    total = 0
    for t in tensors:
        if t is not None:
            total += t.numel()
            if total > limit:
                return False
    return True


_running = threading.local()


def running_passes() -> list[PassRecorder]:
    """The recorded passes this thread is inside (the engine is running them), innermost last."""
    stack: list[PassRecorder] | None = getattr(_running, "stack", None)
    if stack is None:
        stack = _running.stack = []
    return stack


def _graph_task_id() -> int:
    """The id of the backward pass the engine is running in this thread (-1 when torch cannot tell)."""
    get = getattr(torch._C, "_current_graph_task_id", None)
    return -1 if get is None else int(get())


def distributed_rank() -> int | None:
    """This process's rank when torch.distributed is initialised (DDP, torchrun), else None."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return int(dist.get_rank())
    return None


@functools.lru_cache(maxsize=65536)
def _edge(target: int | None, input_nr: int) -> Edge:
    return Edge(target, input_nr)  # edges repeat a lot and are immutable: share them


class PassRecorder:
    """Hooks one pass (install → the engine runs → remove), then `finish` builds its Trace.

    The graph is kept as columns indexed by node (its number in traversal order), not as an object per node:
    the install and the end of the pass are on the user's backward clock, and thousands of small objects
    cost more there than the hooks themselves."""

    def __init__(
        self,
        call: BackwardCall,
        options: Options,
        names: NameBook,
        source: str | None,
        modules: dict[str, str] | None = None,
    ) -> None:
        self.module_classes = dict(modules or {})  # the recording model's hierarchy, when there is one
        self.call = call
        self.options = options
        self.names = names
        self.source = source
        # The native hooks record the default and the full capture; capture="stats" (exact statistics of
        # every gradient, a reduction per tensor) stays in Python, where its cost is the reductions anyway.
        native = native_recorder() if options.capture != "stats" else None
        self.native: Any = None
        self.table: TensorTable | NativeTable
        if native is not None:
            keep_full = options.capture == "full"
            self.native = native.Pass(options.max_values, SAMPLE_SIZE, SAMPLE_BLOCK, keep_full, options.jacobian_limit)
            self.table = NativeTable(self.native, options.capture, options.max_values)
        else:
            self.table = TensorTable(options.capture, options.max_values)
        # the graph, per node: its grad_fn (dropped by release), name, edges as (target node or -1, input_nr),
        # and the forward outputs (v slots) that more than one gradient feeds
        self.fns: list[Any] = []
        self.node_names: list[str] = []
        self.edges: list[list[tuple[int, int]]] = []
        self.fan_in_many: list[Collection[int]] = []
        self.node_types: list[type] = []  # read by harvest: build() describes the ops from them
        self.leaf_vars: dict[int, torch.Tensor] = {}  # AccumulateGrad node -> its leaf (dropped by release)
        self.grad_before: dict[int, int | None] = {}  # AccumulateGrad node -> handle of .grad before the pass
        self.leaf_values: dict[int, int | None] = {}  # AccumulateGrad node -> handle of its small leaf's values
        self.sources: dict[int, str] = {}  # anomaly mode's forward line
        self.node_modules: dict[int, tuple[str, str]] = {}  # (path, class) from tracer.modules
        self.local: dict[int, LocalResult] = {}
        # what the hooks saw: per node, the handles of v and vᵀJ (None or -1: no tensor); the native hooks
        # keep theirs until build()
        self.v: list[Sequence[int | None]] = []
        self.vjp: list[Sequence[int | None]] = []
        self._index: dict[Any, int] | None = None
        self.order: list[int] = []
        self.handles: list[Any] = []
        self.notes: list[str] = []
        self.roots: list[tuple[int, int] | None] = []
        self.seed_handles: list[int | None] = []
        self.retained: list[tuple[str, torch.Tensor, int, int, int | None]] = []  # name, t, node, slot, before
        self.input_nodes: list[tuple[Any, tuple[int, int] | None]] = []
        self.thread = threading.get_ident()
        self.task: int | None = None  # the engine's id of this pass, learnt when its first node runs
        self.reached: set[int] = set()  # id() of the leaves this pass accumulated into (kept after release)
        self.nested_reached: set[int] = set()  # ... and those that passes started inside it accumulated into
        self._harvested: _Harvest | None = None
        self._collected = False  # the native hooks' results were read

    # -- before the pass

    def install(self) -> None:
        self._walk()
        add = self.table.add
        self.seed_handles = [
            add(g, copy=True, exact=True) if isinstance(g, torch.Tensor) else None for g in self.call.grads
        ]
        small = self.options.max_values
        for i, variable in self.leaf_vars.items():
            grad = variable.grad
            self.grad_before[i] = None if grad is None else add(grad, copy=True)
            # A small leaf's own values let the picture explain J (x = [1, 2] beside J = 2x); a copy, since an
            # optimizer may change it before the trace is read.
            if variable.numel() <= small:
                self.leaf_values[i] = add(variable.detach(), copy=True, exact=True)
        if self.names.retained or self.call.inputs:
            index = self._node_index()
            for name, t in self.names.retained:
                edge = gradient_edge(t)
                if edge is not None and edge[0] in index:
                    self.retained.append((name, t, index[edge[0]], edge[1], add(t.grad, copy=True)))
            for t in self.call.inputs:
                edge = gradient_edge(t)
                at = (index[edge[0]], edge[1]) if edge is not None and edge[0] in index else None
                self.input_nodes.append((t, at))
        try:
            if self.native is not None:
                self._install_native()
            else:
                for i in range(len(self.fns)):
                    self.handles.append(self.fns[i].register_hook(self._hook(i)))
        except BaseException:
            self.remove()
            raise

    def _node_index(self) -> dict[Any, int]:
        """grad_fn -> node number (made when first asked: most passes never need it)."""
        if self._index is None:
            self._index = dict(zip(self.fns, range(len(self.fns)), strict=True))
        return self._index

    def _install_native(self) -> None:
        """The native hooks do what _hook's post does, per node told by flags: 1 = AccumulateGrad, 2 = its v
        gets an exact norm, 4 = an output's node (may claim the pass); the walk told them the v slots fed by
        several edges."""
        flags = [0] * len(self.fns)
        for i in self.leaf_vars:
            flags[i] = 1 | (2 if self.grad_before[i] is None else 0)
        for root in self.roots:
            if root is not None:
                flags[root[0]] |= 4
        self.native.install(flags, self._native_jacobian if self.options.jacobian_limit else None)

    def _native_jacobian(self, i: int, grad_inputs: list[Any], grad_outputs: list[Any]) -> None:
        """Called by a native hook (GIL held) for a node small enough for its local Jacobian."""
        try:
            local = local_jacobian(self.fns[i], tuple(grad_outputs), tuple(grad_inputs), self.options.jacobian_limit)
        except Exception as exc:  # recording must never break the pass
            self.notes.append(f"{self.node_names[i]}: could not record ({type(exc).__name__}: {exc})")
            return
        if local is not None:
            self.local[i] = local

    def set_innermost(self, value: bool) -> None:
        """Whether this is the innermost recorded pass of its thread (the native hooks' claim rule)."""
        if self.native is not None:
            self.native.set_innermost(value)

    def _walk(self) -> None:
        """Breadth-first from the outputs, in next_functions order: deterministic traversal."""
        if self.native is not None:
            self._walk_native()
        else:
            self._walk_python()
        anomaly = bool(self.fns) and _anomaly_source(self.fns[0]) is not None
        if anomaly:
            for i, fn in enumerate(self.fns):
                source = _anomaly_source(fn)
                if source is not None:
                    self.sources[i] = source
        if ever_tagged():  # reading node.metadata costs a little: only once a model was ever tagged
            for i, fn in enumerate(self.fns):
                tag = module_tag(fn)
                if tag is not None:
                    self.node_modules[i] = tag

    def _walk_python(self) -> None:
        queue: deque[Any] = deque()
        fns, names, edges = self.fns, self.node_names, self.edges
        fan_in: list[dict[int, int]] = []
        index = self._index = {}

        def visit(fn: Any) -> int:
            i = index.get(fn)
            if i is None:
                i = index[fn] = len(fns)
                fns.append(fn)
                names.append(str(fn.name()).rsplit("::", 1)[-1])
                edges.append([])
                fan_in.append({})
                if names[i] == ACCUMULATE:
                    variable = getattr(fn, "variable", None)
                    if variable is not None:
                        self.leaf_vars[i] = variable
                queue.append(fn)
            return i

        for out in self.call.outputs:
            edge = gradient_edge(out)
            if edge is None:
                self.roots.append(None)
                continue
            i = visit(edge[0])
            fan_in[i][edge[1]] = fan_in[i].get(edge[1], 0) + 1
            self.roots.append((i, edge[1]))
        while queue:
            fn = queue.popleft()
            node_edges = edges[index[fn]]
            for next_fn, input_nr in fn.next_functions:
                if next_fn is None:
                    node_edges.append((-1, input_nr))
                    continue
                j = visit(next_fn)
                fan_in[j][input_nr] = fan_in[j].get(input_nr, 0) + 1
                node_edges.append((j, input_nr))
        self.fan_in_many = [frozenset(k for k, count in slots.items() if count > 1) for slots in fan_in]
        self.v = [()] * len(fns)
        self.vjp = [()] * len(fns)

    def _walk_native(self) -> None:
        """_walk's traversal done by the native module: the same order, names, edges, fan-in and leaves."""
        edges_of = [gradient_edge(out) for out in self.call.outputs]
        nodes, names, edges, many, leaves, root_index = self.native.walk([e for e in edges_of if e is not None])
        self.fns, self.node_names, self.edges, self.fan_in_many = nodes, names, edges, many
        self.leaf_vars = dict(leaves)
        at = iter(root_index)
        self.roots = [None if e is None else (next(at), e[1]) for e in edges_of]

    def _owns_this_run(self, i: int) -> bool:
        """Whether a node running now runs in this pass. A node can belong to several graphs at once (a leaf's
        AccumulateGrad, used by another thread's pass or by a pass a hook starts), and then it fires the hooks
        of every pass that hooked it."""
        task = _graph_task_id()
        if self.task is not None:
            return task == self.task
        # The first of our nodes to finish: in our own thread while we are the innermost recorded pass there,
        # or, on an engine device thread, one of the outputs' nodes (every other node waits for those).
        stack = running_passes()
        mine = (threading.get_ident() == self.thread and bool(stack) and stack[-1] is self) or any(
            root is not None and root[0] == i for root in self.roots
        )
        if mine:
            self.task = task
        return mine

    def _hook(self, i: int) -> Any:
        order, table, limit = self.order, self.table, self.options.jacobian_limit
        add, add_default = table.add, table.add_default
        v_of, vjp_of, many = self.v, self.vjp, self.fan_in_many[i]
        is_leaf = i in self.leaf_vars

        def post(grad_inputs: tuple[torch.Tensor | None, ...], grad_outputs: tuple[torch.Tensor | None, ...]) -> None:
            # Runs inside every backward node: kept to plain calls and locals, no keyword arguments.
            if not self._owns_this_run(i):
                return
            order.append(i)
            try:
                if is_leaf:
                    # Without an earlier .grad the leaf keeps this very tensor (or a copy) as .grad, so asking
                    # for its exact norm holds no extra memory; with one, the sum is made and this tensor freed.
                    # keep_copy: capture="full" copies it, as the next pass accumulates into .grad in place.
                    exact_norm = self.grad_before[i] is None
                    v_of[i] = tuple([add(g, exact_norm=exact_norm, keep_copy=True) for g in grad_outputs])
                    return
                if many:
                    # A slot fed by several edges holds their sum, a new tensor: never reuse an edge's record.
                    v_of[i] = tuple([add(g, fresh=k in many) for k, g in enumerate(grad_outputs)])
                else:
                    v_of[i] = tuple([add_default(g) for g in grad_outputs])
                vjp_of[i] = tuple([add_default(g) for g in grad_inputs])
                if limit and _fits(grad_outputs, limit) and _fits(grad_inputs, limit):
                    local = local_jacobian(self.fns[i], grad_outputs, grad_inputs, limit)
                    if local is not None:
                        self.local[i] = local
            except Exception as exc:  # recording must never break the pass
                self.notes.append(f"{self.node_names[i]}: could not record ({type(exc).__name__}: {exc})")

        return post

    def remove(self) -> None:
        """Take every hook off again (safe to call twice); with the native hooks, collect what they saw."""
        handles, self.handles = self.handles, []
        for h in handles:
            h.remove()
        if self.native is not None and not self._collected:
            self._collected = True
            self.native.remove()
            order, notes, task = self.native.results()  # each node's handles: read by build()
            self.order = order
            self.notes.extend(notes)
            self.task = task if task >= 0 else None

    def release(self) -> None:
        """Drop every reference to the graph and its tensors, so they are freed as without tracing; what
        build() needs was read by harvest() and is plain data."""
        self.fns = []
        self.leaf_vars = {}
        self._index = None
        self.call = BackwardCall((), (), False, False, (), True)
        self.names = NameBook()
        self.retained = []
        self.input_nodes = []

    # -- after the pass

    def harvest(self, result: Any, error: BaseException | None) -> None:
        """Everything that reads the graph, the tensors or the caller's frames, at the end of the pass while
        they are alive and unchanged; build() does the rest from plain data."""
        done = set(self.order)
        self.reached = {id(variable) for i, variable in self.leaf_vars.items() if i in done}
        failing = self._failing_node(error) if error is not None else None
        ids = self._assign_ids(failing)
        add = self.table.add
        totals = {i: add(variable.grad, exact_norm=True) for i, variable in self.leaf_vars.items()}
        retained_totals = [add(t.grad, exact_norm=True) for _, t, _, _, _ in self.retained]
        results = tuple(result) if isinstance(result, tuple | list) else ()
        result_handles = [add(r, exact_norm=True) if isinstance(r, torch.Tensor) else None for r in results]
        self.table.settle()  # exact norms now: the next pass or an optimizer may change .grad in place
        self.node_types = [type(fn) for fn in self.fns]
        leaf_names = self._leaf_names(ids)
        inputs = (
            tuple(self._input_name(t, k) for k, (t, _) in enumerate(self.input_nodes)) if self.call.inputs else None
        )
        self._harvested = _Harvest(
            ids=ids,
            failing=failing,
            error=None if error is None else _described(error),
            totals=totals,
            leaf_names=leaf_names,
            done=done,
            leaves=self._leaves(ids, leaf_names, totals, retained_totals, result_handles, done, error),
            seeds=self._seeds(ids),
            kind="backward" if self.call.accumulate_grad else "grad",
            options=dataclasses.replace(
                self.options, retain_graph=self.call.keep_graph, create_graph=self.call.create_graph, inputs=inputs
            ),
            rank=distributed_rank(),
        )

    def build(self) -> Trace:
        """The Trace, from what harvest() kept: thousands of records become TensorInfo and Steps here, when
        the trace is first read, not inside the user's backward pass. Call once."""
        h = self._harvested
        if h is None:
            raise RuntimeError("PassRecorder.build() before harvest()")
        if self.native is not None:
            self.v, self.vjp = self.native.handles()  # per node, -1 for a missing tensor
        infos = self.table.finish()
        infos_or_none = [*infos, None]  # index -1 (a missing handle) gives None: no call per tensor
        ids, done, failing, totals = h.ids, h.done, h.failing, h.totals
        names, types, locals_, grad_before = self.node_names, self.node_types, self.local, self.grad_before
        sources, node_modules = self.sources, self.node_modules
        steps = []
        arrived: dict[int, tuple[TensorInfo | None, ...]] = {}
        for i in sorted(range(len(names)), key=ids.__getitem__):
            name = names[i]
            local = locals_.get(i)
            op, op_note = describe_node(types[i], name)
            if local is not None and local.saved is not None:
                op = f"{op}({local.saved})"  # a small node also shows what its forward call saved
            if i == failing:
                note = f"raised {h.error}" if h.error is not None else None
            elif op_note is not None:
                note = op_note
            else:
                note = local.note if local is not None else None
            v = tuple([infos_or_none[-1 if k is None else k] for k in self.v[i]])
            if i in totals and grad_before[i] is None and v and v[0] is not None:
                total = totals[i]
                v = (_same_as(v[0], None if total is None else infos[total]),)
            arrived[i] = v
            module = node_modules.get(i)
            steps.append(
                Step(  # positional, in Step's field order: thousands of nodes, keywords cost measurably
                    ids[i],
                    name,
                    op,
                    i in done or i == failing,
                    v,
                    tuple([infos_or_none[-1 if k is None else k] for k in self.vjp[i]]),
                    tuple([_edge(None if t < 0 else ids[t], nr) for t, nr in self.edges[i]]),
                    local.jacobian if local else None,
                    local.check if local else None,
                    sources.get(i),
                    module[0] if module else None,
                    h.leaf_names.get(i),
                    note,
                )
            )

        def resolve(ref: _Ref) -> TensorInfo | None:
            if ref is None:
                return None
            if isinstance(ref, _StepV):
                v = arrived.get(ref.node, ())
                return v[ref.slot] if ref.slot < len(v) else None
            return infos[ref]

        leaves = {}
        for name, fields, refs, reason in h.leaves:
            grad = resolve(refs[0])
            leaves[name] = Leaf(
                name=name,
                grad=grad,
                grad_before=resolve(refs[1]),
                grad_total=resolve(refs[2]),
                value=resolve(refs[3]),
                reason=None if grad is not None else reason,
                **fields,
            )
        seeds = []
        for fields, shape, dtype, handle in h.seeds:
            seed_v = resolve(handle)
            seeds.append(
                Seed(
                    shape=shape if shape is not None else (seed_v.shape if seed_v is not None else ()),
                    dtype=dtype if dtype is not None else (seed_v.dtype if seed_v is not None else ""),
                    v=seed_v,
                    **fields,
                )
            )
        modules = {**self.module_classes, **dict(node_modules.values())}
        self._harvested = None
        self.v, self.vjp, self.edges, self.local = [], [], [], {}
        return Trace(
            kind=h.kind,
            seeds=tuple(seeds),
            nodes=tuple(steps),
            leaves=leaves,
            options=h.options,
            source=self.source,
            complete=h.error is None,
            error=h.error,
            notes=tuple(self.notes),
            torch_version=torch.__version__,
            modules=dict(sorted(modules.items())),
            rank=h.rank,
        )

    def _failing_node(self, error: BaseException) -> int | None:
        """The node that raised: the one the error names when it finished first (anomaly mode checks a node's
        output after it ran), else the one the engine would pick next — every producer done, highest priority
        (sequence number; AccumulateGrad nodes have the highest) — among those not done."""
        named = _NAMED_FAILURE.search(str(error))
        if named is not None:
            for i in reversed(self.order):
                if self.node_names[i] == named.group(1):
                    return i
        done = set(self.order)
        producers: dict[int, list[int]] = {}
        for i, node_edges in enumerate(self.edges):
            for t, _ in node_edges:
                if t >= 0:
                    producers.setdefault(t, []).append(i)
        roots = {r[0] for r in self.roots if r is not None}
        ready = [
            i
            for i in range(len(self.fns))
            if i not in done and (i in roots or producers.get(i)) and all(p in done for p in producers.get(i, ()))
        ]
        if not ready:
            return None

        def priority(i: int) -> int:
            try:
                return int(self.fns[i]._sequence_nr())
            except Exception:  # pragma: no cover - private API moved
                return -1

        return max(ready, key=priority)

    def _assign_ids(self, failing: int | None) -> dict[int, int]:
        """Executed nodes get 1..k in execution order (a node that raised comes last); the rest follow in
        traversal order."""
        ids = dict(zip(self.order, range(1, len(self.order) + 1), strict=True))
        if len(ids) < len(self.order):  # a node ran twice: it keeps its first number
            ids = {}
            for i in self.order:
                ids.setdefault(i, len(ids) + 1)
        if failing is not None and failing not in ids:
            ids[failing] = len(ids) + 1
        if len(ids) < len(self.node_names):
            for i in range(len(self.node_names)):
                if i not in ids:
                    ids[i] = len(ids) + 1
        return ids

    def _leaf_names(self, ids: dict[int, int]) -> dict[int, str]:
        names: dict[int, str] = {}
        given: set[str] = set()
        used: set[str] = set(self.names.explicit)
        unnamed = 0
        for i in sorted(self.leaf_vars, key=ids.__getitem__):
            name = self.names.get(self.leaf_vars[i])
            if name is None or name in given:
                while f"leaf{unnamed}" in used:
                    unnamed += 1
                name = f"leaf{unnamed}"
            used.add(name)
            given.add(name)
            names[i] = name
        return names

    def _input_name(self, t: Any, k: int) -> str:
        name = self.names.get(t) if isinstance(t, torch.Tensor) else None
        return name or f"input{k}"

    def _leaves(
        self,
        ids: dict[int, int],
        leaf_names: dict[int, str],
        totals: dict[int, int | None],
        retained_totals: list[int | None],
        result_handles: list[int | None],
        done: set[int],
        error: BaseException | None,
    ) -> list[_LeafSpec]:
        """Every leaf as (name, its plain fields, refs to grad / grad_before / grad_total, why it may get no
        gradient); build() resolves the refs once the tensors are summarised."""
        leaves: dict[str, _LeafSpec] = {}
        input_at = {at: k for k, (_, at) in enumerate(self.input_nodes) if at is not None}
        returned = not self.call.accumulate_grad
        for i, name in sorted(leaf_names.items(), key=lambda kv: ids[kv[0]]):
            var = self.leaf_vars[i]
            k = input_at.get((i, 0))
            grad: _Ref
            if returned and k is not None and k < len(result_handles):
                grad, kind = result_handles[k], "input"
            else:
                grad, kind = (_StepV(i, 0) if i in done else None), "leaf"
            fields = {"kind": kind, "shape": tuple(var.shape), "dtype": dtype_name(var.dtype), "node": ids[i]}
            reason = self._why_no_gradient(i, input_at, done, error)
            refs = (grad, self.grad_before[i], totals.get(i), self.leaf_values.get(i))
            leaves[name] = (name, fields, refs, reason)
        for (name, t, node, slot, before), total in zip(self.retained, retained_totals, strict=True):
            if name in leaves:
                continue
            fields = {
                "kind": "retained",
                "shape": tuple(t.shape),
                "dtype": dtype_name(t.dtype),
                "node": ids[node],
                "input_nr": slot,
            }
            grad = _StepV(node, slot) if node in done else None
            leaves[name] = (name, fields, (grad, before, total, None), "no gradient reached its node")
        for k, (t, at) in enumerate(self.input_nodes):
            name = self._input_name(t, k)
            if name in leaves or not isinstance(t, torch.Tensor):
                continue
            grad = result_handles[k] if returned and k < len(result_handles) else None
            if grad is None and at is not None and at[0] in done:
                grad = _StepV(at[0], at[1])
            fields = {
                "kind": "input",
                "shape": tuple(t.shape),
                "dtype": dtype_name(t.dtype),
                "node": None if at is None else ids[at[0]],
                "input_nr": 0 if at is None else at[1],
            }
            leaves[name] = (name, fields, (grad, None, None, None), "not on any path from the outputs")
        reached = {id(variable) for variable in self.leaf_vars.values()}
        for name, t in self.names.explicit.items():
            if id(t) not in reached and name not in leaves and t.requires_grad:
                fields = {"kind": "leaf", "shape": tuple(t.shape), "dtype": dtype_name(t.dtype), "node": None}
                reason = (
                    NESTED_REASON
                    if id(t) in self.nested_reached
                    else "not on any path from the outputs (not used to compute them, or only through "
                    "detach() / torch.no_grad())"
                )
                leaves[name] = (name, fields, (None, None, None, None), reason)
        return list(leaves.values())

    def _why_no_gradient(self, i: int, input_at: dict[Any, int], done: set[int], error: BaseException | None) -> str:
        if error is not None and i not in done:
            return "the pass stopped before reaching it"
        if self.call.inputs and (i, 0) not in input_at:
            return "not among the pass's inputs=, so the engine did not accumulate into it"
        if not self.call.accumulate_grad:
            return "torch.autograd.grad returns gradients instead of accumulating into .grad"
        return "no gradient reached it"

    def _seeds(self, ids: dict[int, int]) -> list[_SeedSpec]:
        """Every seed as (its plain fields, shape, dtype, handle of v); shape and dtype are None when the
        output is not a tensor and build() takes them from v."""
        seeds: list[_SeedSpec] = []
        implicit = _implicit_seeds(len(self.call.outputs))  # reads torch's frames: only possible now
        for k, out in enumerate(self.call.outputs):
            root = self.roots[k] if k < len(self.roots) else None
            tensor = out if isinstance(out, torch.Tensor) else None
            fields = {
                "index": k,
                "name": self.names.get(tensor) if tensor is not None else None,
                "target": None if root is None else ids[root[0]],
                "input_nr": 0 if root is None else root[1],
                "implicit": None if implicit is None or k >= len(implicit) else implicit[k],
            }
            handle = self.seed_handles[k] if k < len(self.seed_handles) else None
            shape = tuple(tensor.shape) if tensor is not None else None
            dtype = dtype_name(tensor.dtype) if tensor is not None else None
            seeds.append((fields, shape, dtype, handle))
        return seeds


class _StepV(NamedTuple):
    """A gradient as it arrived at a node: that step's v[slot], known once the steps are built."""

    node: int
    slot: int


_Ref = int | _StepV | None  # a TensorInfo to be: a table handle, a step's v, or nothing
_LeafSpec = tuple[str, dict[str, Any], tuple[_Ref, _Ref, _Ref, _Ref], str]
_SeedSpec = tuple[dict[str, Any], tuple[int, ...] | None, str | None, int | None]


@dataclasses.dataclass
class _Harvest:
    """What build() needs from the end of the pass, as plain data."""

    ids: dict[int, int]
    failing: int | None
    error: str | None
    totals: dict[int, int | None]
    leaf_names: dict[int, str]
    done: set[int]
    leaves: list[_LeafSpec]
    seeds: list[_SeedSpec]
    kind: Literal["backward", "grad"]
    options: Options
    rank: int | None


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


# torch's own functions, taken before record() wraps torch.autograd.backward/grad to explain errors
_SEED_ARGUMENTS = {torch.autograd.backward.__code__: "grad_tensors", torch.autograd.grad.__code__: "grad_outputs"}


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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _described(exc: BaseException) -> str:
    """'ValueError: bad value', or just 'KeyboardInterrupt' when there is no message."""
    line = _first_line(exc)
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__
