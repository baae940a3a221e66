"""Tag backward nodes with the nn.Module whose forward created them: the data behind the module view.

While a ModuleTagger is open, every submodule of the model has a forward pre-hook and a forward hook. When a
module's forward returns, the nodes its outputs lead back to — those created during this call, found by the
autograd sequence number read at the pre-hook, and not past the module's own inputs — get the module's path
in `node.metadata` (torch's per-node dict for exactly this) unless an inner module tagged them already.
Forward hooks return innermost-first, so every node carries the innermost module that created it; a
parameter's AccumulateGrad carries the module using it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils._pytree import tree_flatten

from .gradient_edges import gradient_edge

MODULE_KEY = "gradtrace.module"  # node.metadata[MODULE_KEY] = (module path, module class name)

_tagged_once = False  # set by the first tagger: until then the recorder need not read node metadata
_ACCUMULATE_SEQ = 2**64 - 1  # AccumulateGrad nodes report the largest sequence number


def ever_tagged() -> bool:
    return _tagged_once


def mark_tagged() -> None:
    """A tagger is about to tag: from now on the recorder reads node metadata."""
    global _tagged_once
    _tagged_once = True


def next_sequence_nr() -> int | None:
    getter = getattr(torch._C._autograd, "_get_sequence_nr", None)
    return None if getter is None else int(getter())


def tensors_of(obj: Any) -> Iterator[torch.Tensor]:
    leaves, _ = tree_flatten(obj)
    return (x for x in leaves if isinstance(x, torch.Tensor))


class Frame:
    """One forward call in progress: where its nodes start, its inputs' nodes, and its children's exits."""

    __slots__ = ("boundary", "shortcuts", "start")

    def __init__(self, start: int | None, boundary: set[Any]) -> None:
        self.start = start  # first sequence number created by this call
        self.boundary = boundary  # the nodes of the call's inputs: the walk stops there
        self.shortcuts: dict[Any, set[Any]] = {}  # a finished child's output node -> that child's input nodes


class ModuleTagger:
    """Context manager: tag the nodes created by the model's forward calls with their module paths."""

    def __init__(self, model: torch.nn.Module, root: str = "") -> None:
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model= must be an nn.Module, got {type(model).__name__}")
        self.model = model
        self.root = root
        self.classes = {  # every module's path -> class name, containers included (the view's hierarchy)
            ".".join(p for p in (root, path) if p): type(module).__name__ for path, module in model.named_modules()
        }
        self._handles: list[Any] = []
        self._local = threading.local()

    def __enter__(self) -> ModuleTagger:
        mark_tagged()
        for path, module in self.model.named_modules():
            full = ".".join(p for p in (self.root, path) if p)
            tag = (full, type(module).__name__)
            self._handles.append(module.register_forward_pre_hook(self._pre, with_kwargs=True))
            self._handles.append(self._register_post(module, tag))
        return self

    def __exit__(self, *exc_info: object) -> None:
        handles, self._handles = self._handles, []
        for h in handles:
            h.remove()

    def _stack(self) -> list[Frame]:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def _pre(self, module: torch.nn.Module, args: Any, kwargs: Any) -> None:
        boundary = set()
        for t in tensors_of((args, kwargs)):
            edge = gradient_edge(t)
            if edge is not None:
                boundary.add(edge[0])
        self._stack().append(Frame(next_sequence_nr(), boundary))

    def _register_post(self, module: torch.nn.Module, tag: tuple[str, str]) -> Any:
        def post(module: torch.nn.Module, args: Any, kwargs: Any, output: Any) -> None:
            stack = self._stack()
            if not stack:
                return
            frame = stack.pop()
            if torch.is_grad_enabled():
                tag_outputs(output, tag, frame, stack[-1] if stack else None)

        try:  # always_call: pop the frame even when forward raises (torch >= 2.1)
            return module.register_forward_hook(post, with_kwargs=True, always_call=True)
        except TypeError:  # pragma: no cover - older torch
            return module.register_forward_hook(post, with_kwargs=True)


def tag_outputs(output: Any, tag: tuple[str, str], frame: Frame, parent: Frame | None) -> None:
    """Tag the nodes this call created that its outputs lead back to; children's insides are jumped over
    (their output node leads straight to their input nodes), so each node is visited about once."""
    exits: list[Any] = [t.grad_fn for t in tensors_of(output) if t.grad_fn is not None]
    todo: list[Any] = list(exits)
    seen: set[Any] = set()
    while todo:
        node = todo.pop()
        if node is None or node in seen or node in frame.boundary:
            continue
        seen.add(node)
        jump = frame.shortcuts.get(node)
        if jump is not None and node not in jump:  # a child that returned its input (Identity, eval Dropout)
            todo.extend(jump)  # made nothing: its output node is this call's to tag
            continue
        sequence = node._sequence_nr()
        if frame.start is not None and sequence < frame.start and sequence != _ACCUMULATE_SEQ:
            continue  # made before this forward call: belongs to whoever made it
        metadata = node.metadata
        if MODULE_KEY not in metadata:
            metadata[MODULE_KEY] = tag
        todo.extend(next_fn for next_fn, _ in node.next_functions)
    if parent is not None:
        for node in exits:
            parent.shortcuts[node] = frame.boundary


def module_tag(node: Any) -> tuple[str, str] | None:
    """The (path, class name) a ModuleTagger left on this node, if any."""
    try:
        tag = node.metadata.get(MODULE_KEY)
    except Exception:  # pragma: no cover - a node type without metadata
        return None
    return tag if isinstance(tag, tuple) else None
