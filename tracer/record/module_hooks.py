"""Tag backward nodes with the nn.Module that created them for every module, through torch's global module hooks.

`tracer.record(modules=True)` (and `gradtrace run`, by default) opens an EveryModuleTagger: while it is open,
torch.nn.modules.module.register_module_forward_pre_hook / register_module_forward_hook run around the forward of
every nn.Module in the process, so a script needs no change to get the module view. Each node is tagged as with
`record(model=...)` (modules.py: the innermost module whose forward created it). Paths are found without a model:
a module called while no other module's forward runs is a root, named after the caller's variable (`model`), else
its class; all its submodules get their paths from it at once (`model.layers.3.linear1`). A module first met
inside another's forward but not one of the roots' submodules is named under the module that called it
(`model.block.GELU`).

The hooks return None (they change no argument and no output), and a pre-hook that was run always gets its
forward hook (always_call=True), so a forward that raises leaves nothing behind; both hooks come off when the block
closes, also when it closes with an exception. Modules' own hooks run as before, after the global ones.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
import weakref
from typing import Any, cast

import torch
from torch.nn.modules import module as torch_module

from .gradient_edges import gradient_edge
from .modules import Frame, mark_tagged, next_sequence_nr, tag_outputs, tensors_of
from .names import module_variable

_COMPILE_WARNING = r"Using `torch\.compile\(module\)` when there are global hooks on modules"

Tag = tuple[str, str]  # (module path, class name)


class _Call:
    """One forward call in progress: its module's tag and the Frame the tagging walk uses."""

    __slots__ = ("frame", "module", "tag")

    def __init__(self, module: torch.nn.Module, tag: Tag, frame: Frame) -> None:
        self.module = module
        self.tag = tag
        self.frame = frame


class EveryModuleTagger:
    """Context manager: tag the nodes created by every nn.Module's forward with its module path."""

    def __init__(self) -> None:
        self._tags: weakref.WeakKeyDictionary[torch.nn.Module, Tag] = weakref.WeakKeyDictionary()
        self._classes: dict[str, str] = {}  # every path named so far -> class name (the module view's hierarchy)
        self._lock = threading.Lock()  # modules may be met in several threads at once
        self._local = threading.local()
        self._handles: list[Any] = []
        self._filter: Any = None

    @property
    def classes(self) -> dict[str, str]:
        """The module paths named so far and their classes (a copy: a pass keeps those of its time)."""
        with self._lock:
            return dict(self._classes)

    def __enter__(self) -> EveryModuleTagger:
        mark_tagged()
        pre = torch_module.register_module_forward_pre_hook(self._pre)
        try:
            post = torch_module.register_module_forward_hook(self._post, with_kwargs=True, always_call=True)
        except BaseException:
            pre.remove()
            raise
        self._handles = [pre, post]
        # torch.compile(module) warns whenever global module hooks exist: ours, not the user's, so the user's
        # stderr stays as without gradtrace while the block is open.
        warnings.filterwarnings("ignore", message=_COMPILE_WARNING, category=UserWarning)
        self._filter = warnings.filters[0]
        return self

    def __exit__(self, *exc_info: object) -> None:
        handles, self._handles = self._handles, []
        for h in handles:
            h.remove()
            # torch (2.1-2.14) leaves a with_kwargs hook's id in this dict on remove(); torch.compile(module) then
            # warns about global hooks for the rest of the process. The id is ours: take it out too.
            getattr(torch_module, "_global_forward_hooks_with_kwargs", {}).pop(h.id, None)
        if self._filter is not None:
            with contextlib.suppress(ValueError):  # the user may have reset the filters meanwhile
                cast("list[Any]", warnings.filters).remove(self._filter)  # a list at run time
            self._filter = None
            mutated = getattr(warnings, "_filters_mutated", None)  # drops the cached "already warned" decisions
            if mutated is not None:
                mutated()

    def _stack(self) -> list[_Call]:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def _pre(self, module: torch.nn.Module, args: Any) -> None:
        if torch.compiler.is_compiling():
            # Inside a compiled module's frame torch.compile traces the global hooks too, and cannot trace ours
            # (weak dictionaries, thread locals); its one backward node is tagged from the call outside.
            return
        stack = self._stack()
        tag = self._tags.get(module)
        if tag is None:
            tag = self._name(module, stack[-1] if stack else None)
        boundary = set()
        for t in tensors_of(args):
            edge = gradient_edge(t)
            if edge is not None:
                boundary.add(edge[0])
        stack.append(_Call(module, tag, Frame(next_sequence_nr(), boundary)))

    def _post(self, module: torch.nn.Module, args: Any, *rest: Any) -> None:
        if torch.compiler.is_compiling():
            return
        # (kwargs, output) as asked for with with_kwargs=True; torch calls an always_call hook with (output,) alone
        # when the forward raised (torch 2.1-2.13), and then output is None: only the call is popped.
        kwargs, output = rest if len(rest) == 2 else ({}, rest[0] if rest else None)
        stack = self._stack()
        # Pop this module's call (and any left above it by a call whose forward hooks never ran); a call whose
        # pre-hook ran before the block opened has none: nothing to tag.
        at = len(stack) - 1
        while at >= 0 and stack[at].module is not module:
            at -= 1
        if at < 0:
            return
        call = stack[at]
        del stack[at:]
        if not torch.is_grad_enabled():
            return
        for t in tensors_of(kwargs):  # keyword inputs (the global pre-hook sees positional ones only)
            edge = gradient_edge(t)
            if edge is not None:
                call.frame.boundary.add(edge[0])
        tag_outputs(output, call.tag, call.frame, stack[-1].frame if stack else None)

    def _name(self, module: torch.nn.Module, caller: _Call | None) -> Tag:
        """The tag of a module met for the first time; a new root names all its submodules at once."""
        cls = type(module).__name__
        base = (module_variable(module) or cls) if caller is None else f"{caller.tag[0]}.{cls}"
        with self._lock:
            tag = self._tags.get(module)
            if tag is not None:  # another thread named it meanwhile
                return tag
            root = base
            number = 2
            while root in self._classes:
                root, number = f"{base}_{number}", number + 1
            for path, sub in module.named_modules():
                if sub in self._tags:
                    continue  # met before, under another root: it keeps its first path
                full = f"{root}.{path}" if path else root
                self._tags[sub] = (full, type(sub).__name__)
                self._classes[full] = type(sub).__name__
            return self._tags[module]
