"""One backward pass, while it runs: walk its graph, hook every node, unhook, and harvest what the hooks saw."""

from __future__ import annotations

import threading
from typing import Any

import torch

from ..model.records import Options
from .backward_call import BackwardCall
from .before_pass import BeforePass, snapshot
from .digest_builder import PassFacts, pass_facts
from .harvest import Harvester
from .names import NameBook
from .native.loader import load as native_recorder
from .native.table import NativeTable
from .pass_graph import PassGraph, walk
from .pass_hooks import HookLog, NativeHooks, PythonHooks
from .pass_seen import PassSeen
from .tensors import SAMPLE_BLOCK, SAMPLE_SIZE, TensorTable

_running = threading.local()


def running_passes() -> list[PassRecorder]:
    """The recorded passes this thread is inside (the engine is running them), innermost last."""
    stack: list[PassRecorder] | None = getattr(_running, "stack", None)
    if stack is None:
        stack = _running.stack = []
    return stack


def graph_task_id() -> int:
    """The id of the backward pass the engine is running in this thread (-1 when torch cannot tell)."""
    get = getattr(torch._C, "_current_graph_task_id", None)
    return -1 if get is None else int(get())


class PassClaim:
    """Whether a node running now runs in this pass. A node can belong to several graphs at once (a leaf's
    AccumulateGrad, used by another thread's pass or by a pass a hook starts), and then it fires the hooks of
    every pass that hooked it. (The native hooks apply the same rule in C++.)"""

    def __init__(self, roots: list[tuple[int, int] | None]) -> None:
        self.thread = threading.get_ident()
        self.task: int | None = None  # the engine's id of this pass, learnt when its first node runs
        self.roots = roots

    def owns(self, i: int) -> bool:
        task = graph_task_id()
        if self.task is not None:
            return task == self.task
        # The first of our nodes to finish: in our own thread while we are the innermost recorded pass there,
        # or, on an engine device thread, one of the outputs' nodes (every other node waits for those).
        stack = running_passes()
        mine = (threading.get_ident() == self.thread and bool(stack) and stack[-1].claim is self) or any(
            root is not None and root[0] == i for root in self.roots
        )
        if mine:
            self.task = task
        return mine


class PassRecorder:
    """Hooks one pass: install → the engine runs → remove → harvest (a PassSeen) → release; recorder.py calls
    them in that order. The recorder's budget is the backward pass itself, so the hooks only snapshot, harvest
    reads only what must be read while the graph is alive, and turning thousands of records into the Trace
    (trace_builder.build_trace, from `seen`) waits until the trace is first read."""

    def __init__(
        self,
        call: BackwardCall,
        options: Options,
        names: NameBook,
        source: str | None,
        modules: dict[str, str] | None = None,
        in_transform: bool = False,
    ) -> None:
        self.in_transform = in_transform  # a torch.func.grad pass: Python hooks, reading values unwrapped
        self.module_classes = dict(modules or {})  # the recording model's hierarchy, when there is one
        self.call = call
        self.options = options
        self.names = names
        self.source = source
        # The native hooks record every capture; capture="stats" reads each gradient once there (fused_stats
        # in native_hooks.cpp). A torch.func pass stays in Python: see recorder.py's _run_recorded.
        native = native_recorder() if not in_transform else None
        self.native: Any = None
        self.table: TensorTable | NativeTable
        if native is not None:
            keep_full = options.capture == "full"
            self.native = native.Pass(options.max_values, SAMPLE_SIZE, SAMPLE_BLOCK, keep_full, options.jacobian_limit)
            if options.capture == "stats":
                self.native.exact_statistics()
            self.table = NativeTable(self.native, options.capture, options.max_values)
        else:
            self.table = TensorTable(options.capture, options.max_values)
        self.graph = PassGraph()
        self.before = BeforePass()
        self.log = HookLog()
        self.claim = PassClaim(self.graph.roots)
        self.hooks: PythonHooks | NativeHooks | None = None
        self.reached: set[int] = set()  # id() of the leaves this pass accumulated into (kept after release)
        self.nested_reached: set[int] = set()  # ... and those that passes started inside it accumulated into
        self.seen: PassSeen | None = None  # what harvest() read: build the Trace from it
        self.facts: PassFacts | None = None  # what harvest() read for the pass's digest

    # -- before the pass

    def install(self) -> None:
        self.graph = walk(self.call.outputs, self.native)
        self.claim.roots = self.graph.roots
        self.before = snapshot(self.graph, self.call, self.names, self.table, self.options.max_values)
        try:
            self.hooks = self._make_hooks()
            self.hooks.install()
        except BaseException:
            self.remove()
            raise

    def _make_hooks(self) -> PythonHooks | NativeHooks:
        limit, grad_before = self.options.jacobian_limit, self.before.grad_before
        if self.native is not None:
            return NativeHooks(self.native, self.graph, grad_before, self.log, limit)
        assert isinstance(self.table, TensorTable)
        return PythonHooks(self.graph, self.table, grad_before, self.log, self.claim.owns, limit, self.in_transform)

    def set_innermost(self, value: bool) -> None:
        """Whether this is the innermost recorded pass of its thread (the native hooks' claim rule)."""
        if self.hooks is not None:
            self.hooks.set_innermost(value)

    # -- after the pass

    def remove(self) -> None:
        """Take every hook off again (safe to call twice); with the native hooks, collect what they saw."""
        if self.hooks is not None:
            self.hooks.remove()

    def harvest(self, result: Any, error: BaseException | None) -> None:
        """Everything that reads the graph, the tensors or the caller's frames, at the end of the pass while
        they are alive and unchanged, into `seen`: plain data from which the Trace is built."""
        done = frozenset(self.log.order)
        self.reached = {id(variable) for i, variable in self.graph.leaf_vars.items() if i in done}
        harvester = Harvester(
            call=self.call,
            names=self.names,
            graph=self.graph,
            before=self.before,
            log=self.log,
            table=self.table,
            native=self.native,
            options=self.options,
            nested_reached=self.nested_reached,
        )
        self.seen = harvester.seen(result, error, done, self.source, self.module_classes)
        try:
            self.facts = pass_facts(self.seen, self.graph.leaf_vars, self._v_handle, self.native)
        except Exception:  # tensors it cannot read (the 'meta' device): the pass keeps its trace, gets no digest
            self.facts = None
        self.table.compact()  # a pass kept unread holds its samples, no row blocks (see compact)

    def _v_handle(self, node: int, slot: int) -> int | None:
        """The table handle of the gradient that arrived at a node's input slot."""
        if isinstance(self.table, NativeTable):
            return self.table.v_handle(node, slot)
        arrived = self.log.v[node] if node < len(self.log.v) else ()
        return arrived[slot] if slot < len(arrived) else None

    def release(self) -> None:
        """Drop every reference to the graph and its tensors, so they are freed as without tracing; what
        the Trace needs was read by harvest() and is plain data."""
        self.graph.release()
        self.before.release()
        self.call = BackwardCall.empty()
        self.names = NameBook()
