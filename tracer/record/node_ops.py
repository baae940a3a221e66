"""What a backward node stands for: the forward operation it came from, in plain words, and its source line."""

from __future__ import annotations

import functools
import re
from typing import Any

ACCUMULATE = "AccumulateGrad"

_BACKWARD_SUFFIX = re.compile(r"Backward\d*$")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_TRACEBACK_LINE = re.compile(r'File "([^"]+)", line (\d+)')

COMPILED_OP = "torch.compile: a compiled region, its whole backward in one node"
COMPILED_NOTE = (
    "torch.compile runs the backward of this compiled region as one function: the steps inside it are not "
    "visible and its Jacobian is not computed; run the model without torch.compile to see them"
)


@functools.lru_cache(maxsize=4096)
def _op_from_name(name: str) -> str:
    if name == ACCUMULATE:
        return "leaf: accumulate into .grad"
    if name == "CopySlices":
        return "in-place write into a slice (y[i] = ...)"
    base = _BACKWARD_SUFFIX.sub("", name)
    return _CAMEL.sub("_", base).lower() if base != name else name


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


def anomaly_source(node: Any) -> str | None:
    """The forward line from anomaly mode's traceback, when the user turned it on for the forward."""
    try:
        stack = node.metadata.get("traceback_")
    except Exception:
        return None
    if not stack:
        return None
    for entry in reversed(stack):
        match = _TRACEBACK_LINE.search(entry)
        if match and "/torch/" not in match.group(1).replace("\\", "/"):
            return f"{match.group(1)}:{match.group(2)}"
    return None
