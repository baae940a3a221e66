"""One backward pass: walk its graph, hook every node, and turn what the hooks saw into a Trace.

Only post-hooks are used: they run right after a node, with both the v it consumed and the vᵀJ it produced,
in the engine's execution order, and registering them costs a quarter of what pre-hooks cost. The
recorder's budget is the backward pass itself, so the hooks only snapshot (tensors.TensorTable, or the
same table in C++ when the native recorder is built: native.py), `harvest` reads what must be read while
the graph is alive, and `build` — turning thousands of records into the Trace — runs when it is first read.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import sys
import threading
from collections import deque
from typing import Any, Literal, NamedTuple

import torch

from .gradient_edges import gradient_edge
from .local_jacobian import LocalResult, local_jacobian
from .model import Edge, Leaf, Options, Seed, Step, TensorInfo, Trace
from .modules import ever_tagged, module_tag
from .names import NameBook
from .native import load as native_recorder
from .native_table import NativeTable
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


_CPP_NODE_TYPES: set[type] = set()  # types of torch's own C++ nodes: no forward class (a small, fixed set)


def _forward_class(node: Any) -> Any:
    """The autograd.Function a Python node came from, None for torch's C++ nodes (checked once per type: this
    runs for every node of every pass)."""
    cls = type(node)
    if cls in _CPP_NODE_TYPES:
        return None
    forward_cls = getattr(node, "_forward_cls", None)
    if forward_cls is None:
        _CPP_NODE_TYPES.add(cls)
    return forward_cls


def _is_compiled(node: Any) -> bool:
    """A torch.compile'd region: AOTAutograd puts its whole backward into one CompiledFunction node."""
    forward_cls = _forward_class(node)
    return (
        forward_cls is not None
        and forward_cls.__name__ == "CompiledFunction"
        and forward_cls.__module__.startswith("torch._functorch")
    )


def describe_op(name: str, node: Any) -> str:
    """The forward operation a backward node came from, in plain words."""
    forward_cls = _forward_class(node)
    if forward_cls is None:
        return _op_from_name(name)
    if _is_compiled(node):
        return COMPILED_OP
    return f"{forward_cls.__name__}.apply"


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


class _NodeState:
    __slots__ = (
        "edges",
        "fan_in",
        "fan_in_many",
        "fn",
        "grad_before",
        "is_leaf",
        "local",
        "module",
        "name",
        "note",
        "op",
        "source",
        "v",
        "variable",
        "vjp",
    )

    def __init__(self, fn: Any, name: str | None = None) -> None:
        self.fn = fn
        self.name = str(fn.name() if name is None else name).rsplit("::", 1)[-1]
        self.op = ""  # describe_op, filled in by harvest (it reads the node)
        self.note: str | None = None  # torch.compile's note, filled in by harvest
        self.is_leaf = False
        self.edges: list[tuple[int | None, int]] = []
        self.fan_in: dict[int, int] = {}  # forward output -> how many gradients arrive there
        self.fan_in_many: frozenset[int] = frozenset()  # the forward outputs fed by more than one gradient
        self.variable: torch.Tensor | None = None  # AccumulateGrad: the leaf
        self.source: str | None = None
        self.module: tuple[str, str] | None = None  # (path, class) from tracer.modules
        self.v: tuple[int | None, ...] = ()
        self.vjp: tuple[int | None, ...] = ()
        self.local: LocalResult | None = None
        self.grad_before: int | None = None


class PassRecorder:
    """Hooks one pass (install → the engine runs → remove), then `finish` builds its Trace."""

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
        self.native_module = native
        self.table: TensorTable | NativeTable
        if native is not None:
            keep_full = options.capture == "full"
            self.native = native.Pass(options.max_values, SAMPLE_SIZE, SAMPLE_BLOCK, keep_full, options.jacobian_limit)
            self.table = NativeTable(self.native, options.capture, options.max_values)
        else:
            self.table = TensorTable(options.capture, options.max_values)
        self.states: list[_NodeState] = []
        self.index: dict[Any, int] = {}
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
        for st in self.states:
            if st.variable is not None:
                st.grad_before = add(st.variable.grad, copy=True)
        for name, t in self.names.retained:
            edge = gradient_edge(t)
            if edge is not None and edge[0] in self.index:
                self.retained.append((name, t, self.index[edge[0]], edge[1], add(t.grad, copy=True)))
        for t in self.call.inputs:
            edge = gradient_edge(t)
            at = (self.index[edge[0]], edge[1]) if edge is not None and edge[0] in self.index else None
            self.input_nodes.append((t, at))
        try:
            if self.native is not None:
                self._install_native()
            else:
                for i, st in enumerate(self.states):
                    self.handles.append(st.fn.register_hook(self._hook(i, st)))
        except BaseException:
            self.remove()
            raise

    def _install_native(self) -> None:
        """The native hooks do what _hook's post does, per node told by flags: 1 = AccumulateGrad, 2 = its v
        gets an exact norm, 4 = an output's node (may claim the pass); plus the v slots fed by several edges."""
        roots = {r[0] for r in self.roots if r is not None}
        flags = []
        for i, st in enumerate(self.states):
            leaf = 1 | (2 if st.grad_before is None else 0) if st.variable is not None else 0
            flags.append(leaf | (4 if i in roots else 0))
        fresh = [sorted(st.fan_in_many) for st in self.states]
        jacobian = self._native_jacobian if self.options.jacobian_limit else None
        self.native.install([st.fn for st in self.states], flags, fresh, jacobian)

    def _native_jacobian(self, i: int, grad_inputs: list[Any], grad_outputs: list[Any]) -> None:
        """Called by a native hook (GIL held) for a node small enough for its local Jacobian."""
        st = self.states[i]
        try:
            st.local = local_jacobian(st.fn, tuple(grad_outputs), tuple(grad_inputs), self.options.jacobian_limit)
        except Exception as exc:  # recording must never break the pass
            self.notes.append(f"{st.name}: could not record ({type(exc).__name__}: {exc})")

    def set_innermost(self, value: bool) -> None:
        """Whether this is the innermost recorded pass of its thread (the native hooks' claim rule)."""
        if self.native is not None:
            self.native.set_innermost(value)

    def _walk(self) -> None:
        """Breadth-first from the outputs, in next_functions order: deterministic traversal."""
        if self.native is not None:
            self._walk_native()
            return
        queue: deque[Any] = deque()
        states, index = self.states, self.index

        def visit(fn: Any) -> int:
            i = index.get(fn)
            if i is None:
                i = index[fn] = len(states)
                st = _NodeState(fn)
                if st.name == ACCUMULATE:
                    st.variable = getattr(fn, "variable", None)
                states.append(st)
                queue.append(fn)
            return i

        for out in self.call.outputs:
            edge = gradient_edge(out)
            if edge is None:
                self.roots.append(None)
                continue
            i = visit(edge[0])
            states[i].fan_in[edge[1]] = states[i].fan_in.get(edge[1], 0) + 1
            self.roots.append((i, edge[1]))
        anomaly = bool(states) and _anomaly_source(states[0].fn) is not None
        tagged = ever_tagged()  # reading node.metadata costs a little: only once a model was ever tagged
        while queue:
            fn = queue.popleft()
            st = states[index[fn]]
            if anomaly:
                st.source = _anomaly_source(fn)
            if tagged:
                st.module = module_tag(fn)
            for next_fn, input_nr in fn.next_functions:
                if next_fn is None:
                    st.edges.append((None, input_nr))
                    continue
                j = visit(next_fn)
                target = states[j]
                target.fan_in[input_nr] = target.fan_in.get(input_nr, 0) + 1
                st.edges.append((j, input_nr))
        for st in states:
            st.fan_in_many = frozenset(k for k, count in st.fan_in.items() if count > 1)

    def _walk_native(self) -> None:
        """_walk's traversal done by the native module (the same order, edges and fan-in), then what only
        Python can read: leaves' tensors, anomaly-mode source lines, module tags."""
        assert self.native_module is not None
        edges_of = [gradient_edge(out) for out in self.call.outputs]
        nodes, names, edges, many = self.native_module.walk([e for e in edges_of if e is not None])
        states, index = self.states, self.index
        for i, (fn, name, node_edges, slots) in enumerate(zip(nodes, names, edges, many, strict=True)):
            st = _NodeState(fn, name)
            st.edges = [(None if t < 0 else t, nr) for t, nr in node_edges]
            st.fan_in_many = frozenset(slots)
            if st.name == ACCUMULATE:
                st.variable = getattr(fn, "variable", None)
            index[fn] = i
            states.append(st)
        self.roots = [None if e is None else (index[e[0]], e[1]) for e in edges_of]
        anomaly = bool(states) and _anomaly_source(states[0].fn) is not None
        tagged = ever_tagged()
        if anomaly or tagged:
            for st in states:
                if anomaly:
                    st.source = _anomaly_source(st.fn)
                if tagged:
                    st.module = module_tag(st.fn)

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

    def _hook(self, i: int, st: _NodeState) -> Any:
        order, table, limit = self.order, self.table, self.options.jacobian_limit
        add, add_default = table.add, table.add_default

        def post(grad_inputs: tuple[torch.Tensor | None, ...], grad_outputs: tuple[torch.Tensor | None, ...]) -> None:
            # Runs inside every backward node: kept to plain calls and locals, no keyword arguments.
            if not self._owns_this_run(i):
                return
            order.append(i)
            try:
                if st.variable is not None:
                    # Without an earlier .grad the leaf keeps this very tensor (or a copy) as .grad, so asking
                    # for its exact norm holds no extra memory; with one, the sum is made and this tensor freed.
                    # keep_copy: capture="full" copies it, as the next pass accumulates into .grad in place.
                    exact_norm = st.grad_before is None
                    st.v = tuple([add(g, exact_norm=exact_norm, keep_copy=True) for g in grad_outputs])
                    return
                if st.fan_in_many:
                    # A slot fed by several edges holds their sum, a new tensor: never reuse an edge's record.
                    many = st.fan_in_many
                    st.v = tuple([add(g, fresh=k in many) for k, g in enumerate(grad_outputs)])
                else:
                    st.v = tuple([add_default(g) for g in grad_outputs])
                st.vjp = tuple([add_default(g) for g in grad_inputs])
                if limit and _fits(grad_outputs, limit) and _fits(grad_inputs, limit):
                    st.local = local_jacobian(st.fn, grad_outputs, grad_inputs, limit)
            except Exception as exc:  # recording must never break the pass
                self.notes.append(f"{st.name}: could not record ({type(exc).__name__}: {exc})")

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

    def _native_handles(self) -> None:
        """Each executed node's v and vᵀJ handles, from the native hooks (into _NodeState, as _hook does)."""
        v, vjp = self.native.handles()
        states = self.states
        for i in self.order:
            st = states[i]
            st.v = tuple([None if h < 0 else h for h in v[i]])
            st.vjp = tuple([None if h < 0 else h for h in vjp[i]])

    def release(self) -> None:
        """Drop every reference to the graph and its tensors, so they are freed as without tracing; what
        build() needs was read by harvest() and is plain data."""
        for st in self.states:
            st.fn = None
            st.variable = None
        self.index = {}
        self.call = BackwardCall((), (), False, False, (), True)
        self.names = NameBook()
        self.retained = []
        self.input_nodes = []

    # -- after the pass

    def harvest(self, result: Any, error: BaseException | None) -> None:
        """Everything that reads the graph, the tensors or the caller's frames, at the end of the pass while
        they are alive and unchanged; build() does the rest from plain data."""
        states = self.states
        self.reached = {id(states[i].variable) for i in self.order if states[i].variable is not None}
        failing = self._failing_node(error) if error is not None else None
        ids = self._assign_ids(failing)
        add = self.table.add
        totals = {i: add(st.variable.grad, exact_norm=True) for i, st in enumerate(states) if st.variable is not None}
        retained_totals = [add(t.grad, exact_norm=True) for _, t, _, _, _ in self.retained]
        results = tuple(result) if isinstance(result, tuple | list) else ()
        result_handles = [add(r, exact_norm=True) if isinstance(r, torch.Tensor) else None for r in results]
        self.table.settle()  # exact norms now: the next pass or an optimizer may change .grad in place
        for st in states:
            st.is_leaf = st.variable is not None
            st.op = describe_op(st.name, st.fn)
            st.note = COMPILED_NOTE if _is_compiled(st.fn) else None
        leaf_names = self._leaf_names(ids)
        done = set(self.order)
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
            self._native_handles()
        infos = self.table.finish()
        infos_or_none = [*infos, None]  # index -1 (a missing handle) gives None: no call per tensor
        ids, done, failing, totals = h.ids, h.done, h.failing, h.totals
        states = self.states
        order = sorted(range(len(states)), key=ids.__getitem__)
        steps = []
        arrived: dict[int, tuple[TensorInfo | None, ...]] = {}
        for i in order:
            st = states[i]
            local = st.local
            if i == failing:
                note = f"raised {h.error}" if h.error is not None else None
            elif st.note is not None:
                note = st.note
            else:
                note = local.note if local is not None else None
            v = tuple([infos_or_none[-1 if k is None else k] for k in st.v])
            if st.is_leaf and st.grad_before is None and v and v[0] is not None:
                total = totals.get(i)
                v = (_same_as(v[0], None if total is None else infos[total]),)
            arrived[i] = v
            steps.append(
                Step(  # positional, in Step's field order: thousands of nodes, keywords cost measurably
                    ids[i],
                    st.name,
                    st.op,
                    i in done or i == failing,
                    v,
                    tuple([infos_or_none[-1 if k is None else k] for k in st.vjp]),
                    tuple([_edge(None if t is None else ids[t], nr) for t, nr in st.edges]),
                    local.jacobian if local else None,
                    local.check if local else None,
                    st.source,
                    st.module[0] if st.module else None,
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
        modules = {**self.module_classes, **dict(st.module for st in states if st.module)}
        self._harvested = None
        self.states = []
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
                if self.states[i].name == named.group(1):
                    return i
        done = set(self.order)
        producers: dict[int, list[int]] = {}
        for i, st in enumerate(self.states):
            for t, _ in st.edges:
                if t is not None:
                    producers.setdefault(t, []).append(i)
        roots = {r[0] for r in self.roots if r is not None}
        ready = [
            i
            for i in range(len(self.states))
            if i not in done and (i in roots or producers.get(i)) and all(p in done for p in producers.get(i, ()))
        ]
        if not ready:
            return None

        def priority(i: int) -> int:
            try:
                return int(self.states[i].fn._sequence_nr())
            except Exception:  # pragma: no cover - private API moved
                return -1

        return max(ready, key=priority)

    def _assign_ids(self, failing: int | None) -> dict[int, int]:
        """Executed nodes get 1..k in execution order (a node that raised comes last); the rest follow in
        traversal order."""
        ids: dict[int, int] = {}
        for i in self.order:
            if i not in ids:
                ids[i] = len(ids) + 1
        if failing is not None and failing not in ids:
            ids[failing] = len(ids) + 1
        for i in range(len(self.states)):
            if i not in ids:
                ids[i] = len(ids) + 1
        return ids

    def _leaf_names(self, ids: dict[int, int]) -> dict[int, str]:
        names: dict[int, str] = {}
        used: set[str] = set(self.names.explicit)
        unnamed = 0
        for i in sorted(range(len(self.states)), key=ids.__getitem__):
            variable = self.states[i].variable
            if variable is None:
                continue
            name = self.names.get(variable)
            if name is None or name in names.values():
                while f"leaf{unnamed}" in used:
                    unnamed += 1
                name = f"leaf{unnamed}"
            used.add(name)
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
            st = self.states[i]
            var = st.variable
            assert var is not None
            k = input_at.get((i, 0))
            grad: _Ref
            if returned and k is not None and k < len(result_handles):
                grad, kind = result_handles[k], "input"
            else:
                grad, kind = (_StepV(i, 0) if i in done else None), "leaf"
            fields = {"kind": kind, "shape": tuple(var.shape), "dtype": dtype_name(var.dtype), "node": ids[i]}
            reason = self._why_no_gradient(i, input_at, done, error)
            leaves[name] = (name, fields, (grad, st.grad_before, totals.get(i)), reason)
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
            leaves[name] = (name, fields, (grad, before, total), "no gradient reached its node")
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
            leaves[name] = (name, fields, (grad, None, None), "not on any path from the outputs")
        reached = {id(st.variable) for st in self.states if st.variable is not None}
        for name, t in self.names.explicit.items():
            if id(t) not in reached and name not in leaves and t.requires_grad:
                fields = {"kind": "leaf", "shape": tuple(t.shape), "dtype": dtype_name(t.dtype), "node": None}
                reason = (
                    NESTED_REASON
                    if id(t) in self.nested_reached
                    else "not on any path from the outputs (not used to compute them, or only through "
                    "detach() / torch.no_grad())"
                )
                leaves[name] = (name, fields, (None, None, None), reason)
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
_LeafSpec = tuple[str, dict[str, Any], tuple[_Ref, _Ref, _Ref], str]
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
