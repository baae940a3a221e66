"""The end of a pass: read what must be read while the graph, the tensors and the caller's frames are alive."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..model.records import Options
from .backward_call import BackwardCall
from .before_pass import BeforePass
from .leaf_specs import LeafSpecs, Totals
from .names import NameBook
from .native.table import NativeTable
from .pass_graph import PassGraph
from .pass_hooks import Handles, HookLog
from .pass_seen import PassSeen
from .step_ids import assign_ids, failing_node
from .tensors import TensorTable


class Harvester:
    """Reads the end of one pass into a PassSeen; build the Trace from that (trace_builder.py)."""

    def __init__(
        self,
        *,
        call: BackwardCall,
        names: NameBook,
        graph: PassGraph,
        before: BeforePass,
        log: HookLog,
        table: TensorTable | NativeTable,
        native: Any,
        options: Options,
        nested_reached: set[int],
    ) -> None:
        self.call = call
        self.names = names
        self.graph = graph
        self.before = before
        self.log = log
        self.table = table
        self.native = native  # the native pass, when the native hooks recorded it
        self.options = options
        self.nested_reached = nested_reached

    def seen(
        self,
        result: Any,
        error: BaseException | None,
        done: frozenset[int],
        source: str | None,
        modules: dict[str, str],
    ) -> PassSeen:
        """`done`: the nodes that ran; `source`: where the pass started; `modules`: the model's hierarchy."""
        graph, call = self.graph, self.call
        failing = failing_node(graph, self.log.order, error) if error is not None else None
        ids = assign_ids(self.log.order, failing, len(graph.names))
        totals = self._read_totals(result)
        specs = LeafSpecs(
            call=call, names=self.names, graph=graph, before=self.before, nested_reached=self.nested_reached
        )
        leaf_names = specs.leaf_names(ids)
        inputs = (
            tuple(specs.input_name(t, k) for k, (t, _) in enumerate(self.before.input_nodes)) if call.inputs else None
        )
        return PassSeen(
            table=self.table,
            node_handles=self._node_handles(),
            names=graph.names,
            types=[type(fn) for fn in graph.fns],
            edges=graph.edges,
            local=self.log.local,
            grad_before=self.before.grad_before,
            sources=graph.sources,
            modules=graph.modules,
            ids=ids,
            done=done,
            failing=failing,
            error=None if error is None else _described(error),
            totals=totals.leaves,
            leaf_names=leaf_names,
            leaves=specs.leaves(ids, leaf_names, totals, done, error),
            seeds=specs.seeds(ids),
            kind="backward" if call.accumulate_grad else "grad",
            options=dataclasses.replace(
                self.options, retain_graph=call.keep_graph, create_graph=call.create_graph, inputs=inputs
            ),
            source=source,
            module_classes=modules,
            notes=tuple(self.log.notes),
            rank=distributed_rank(),
            budget=self.log.budget.keep_nodes(graph.fns, call.keep_graph),
        )

    def _node_handles(self) -> Callable[[], tuple[Sequence[Handles], Sequence[Handles]]]:
        """The native hooks keep each node's handles until the trace is built (-1 for a missing tensor)."""
        if self.native is not None:
            return self.native.handles  # type: ignore[no-any-return]
        v, vjp = self.log.v, self.log.vjp
        return lambda: (v, vjp)

    def _read_totals(self, result: Any) -> Totals:
        add = self.table.add
        totals = Totals(
            leaves={i: add(variable.grad, exact_norm=True) for i, variable in self.graph.leaf_vars.items()},
            retained=[add(r.tensor.grad, exact_norm=True) for r in self.before.retained],
            results=[
                add(r, exact_norm=True) if isinstance(r, torch.Tensor) else None
                for r in (tuple(result) if isinstance(result, tuple | list) else ())
            ],
        )
        self.table.settle()  # exact norms now: the next pass or an optimizer may change .grad in place
        return totals


def distributed_rank() -> int | None:
    """This process's rank when torch.distributed is initialised (DDP, torchrun), else None."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return int(dist.get_rank())
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _described(exc: BaseException) -> str:
    """'ValueError: bad value', or just 'KeyboardInterrupt' when there is no message."""
    line = _first_line(exc)
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__
