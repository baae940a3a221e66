"""One call of the engine's run_backward, parsed: the outputs, seeds and flags a recorded pass starts from."""

from __future__ import annotations

import dataclasses
from typing import Any


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

    @classmethod
    def empty(cls) -> BackwardCall:
        """A call that holds no tensors: what a released pass keeps, so the user's tensors can be freed."""
        return cls(outputs=(), grads=(), keep_graph=False, create_graph=False, inputs=(), accumulate_grad=True)
