"""Name tensors after the variables that hold them: names=, modules' parameters, the caller's locals, globals."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from types import FrameType
from typing import Any

import torch

from .func_passes import is_wrapped, unwrapped

_OWN_DIRS = (
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep,  # all of tracer/, not just record/
    os.path.dirname(os.path.abspath(torch.__file__)) + os.sep,
)
_COMPREHENSIONS = frozenset({"<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>"})
_SKIPPED_GLOBALS = frozenset({"In", "Out", "exit", "quit", "get_ipython"})


def user_frame(start: FrameType | None = None) -> FrameType | None:
    """The innermost frame outside gradtrace and torch: the user's line that started the pass."""
    frame: FrameType | None = start if start is not None else sys._getframe(1)
    while frame is not None:
        filename = os.path.abspath(frame.f_code.co_filename)
        if not filename.startswith(_OWN_DIRS) and not frame.f_code.co_filename.startswith("<frozen"):
            return frame
        frame = frame.f_back
    return None


def frame_source(frame: FrameType | None) -> str | None:
    return None if frame is None else f"{frame.f_code.co_filename}:{frame.f_lineno}"


class NameBook:
    """Maps tensors to names for one pass; holds references so that ids stay valid until it is dropped."""

    def __init__(self, names: Any = None, frame: FrameType | None = None) -> None:
        self._by_id: dict[int, str] = {}
        self._tensors: list[torch.Tensor] = []  # keeps the named tensors alive so id() stays unique
        self._data_names: dict[tuple[Any, ...], str] | None = None  # by the data they hold (torch.func passes)
        self.explicit: dict[str, torch.Tensor] = {}  # names= and modules seen: leaves expected in the pass
        self.retained: list[tuple[str, torch.Tensor]] = []  # non-leaves with retain_grad() in the frame
        if names is not None:
            self._add_explicit(names)
        if frame is not None:
            scopes = [(frame.f_locals, False)]
            # A comprehension's frame (Python < 3.12) sees only its loop variables: the function around it too
            outer = frame
            while outer.f_code.co_name in _COMPREHENSIONS and outer.f_back is not None:
                outer = outer.f_back
                scopes.append((outer.f_locals, False))
            if frame.f_globals is not frame.f_locals:
                scopes.append((frame.f_globals, True))
            # Modules' parameters first: a parameter is named by its module path (model.fc.bias) in every pass,
            # not by whichever variable holds it now (a loop's `p` after `for name, p in model.named_parameters()`)
            for scope, skip_private in scopes:
                self._add_modules(scope, skip_private=skip_private)
            for scope, skip_private in scopes:
                self._add_scope(scope, explicit_modules=True, skip_private=skip_private)

    def get(self, tensor: torch.Tensor) -> str | None:
        name = self._by_id.get(id(tensor))
        if name is None and is_wrapped(tensor):
            return self._get_wrapped(tensor)
        return name

    def _get_wrapped(self, tensor: torch.Tensor) -> str | None:
        """torch.func.grad's wrapper of the caller's tensor: the caller's name of it at some level (grad of grad
        wraps twice), or of a tensor sharing its data (functional_call's {k: v.detach()} of a model's params)."""
        inner = unwrapped(tensor)
        if inner is None:
            return None
        level = tensor
        while level is not inner:
            level = torch._C._functorch.get_unwrapped(level)
            name = self._by_id.get(id(level))
            if name is not None:
                return name
        key = _data_key(inner)
        return None if key is None else self._by_data().get(key)

    def _by_data(self) -> dict[tuple[Any, ...], str]:
        if self._data_names is None:
            self._data_names = {}
            for t in self._tensors:
                key = _data_key(t)
                if key is not None:
                    self._data_names.setdefault(key, self._by_id[id(t)])
        return self._data_names

    def _put(self, name: str, tensor: torch.Tensor) -> bool:
        if id(tensor) in self._by_id:
            return False
        self._by_id[id(tensor)] = name
        self._tensors.append(tensor)
        return True

    def _add_explicit(self, names: Any) -> None:
        if isinstance(names, torch.nn.Module):
            prefix = module_variable(names)
            for pname, param in named_parameters(names):
                full = f"{prefix}.{pname}" if prefix else pname
                self._put(full, param)
                self.explicit[full] = param
            return
        if not isinstance(names, Mapping):
            raise TypeError(
                f"names= must be a dict of name -> tensor (or module), or an nn.Module; got {type(names).__name__}. "
                "Example: names={'x': x, 'w': w} or names=model"
            )
        for key, value in names.items():
            if isinstance(value, torch.nn.Module):
                for pname, param in named_parameters(value):
                    self._put(f"{key}.{pname}", param)
                    self.explicit[f"{key}.{pname}"] = param
            elif isinstance(value, torch.Tensor):
                self._put(str(key), value)
                self.explicit[str(key)] = value
            else:
                raise TypeError(
                    f"names={{{key!r}: ...}} must map to a tensor or an nn.Module, got {type(value).__name__}"
                )

    def _add_scope(self, scope: Mapping[str, Any], *, explicit_modules: bool, skip_private: bool = False) -> None:
        for key, value in list(scope.items()):
            if skip_private and (key.startswith("_") or key in _SKIPPED_GLOBALS):
                continue
            if isinstance(value, torch.Tensor) and self._put(key, value) and value.retains_grad and not value.is_leaf:
                self.retained.append((key, value))

    def _add_modules(self, scope: Mapping[str, Any], *, skip_private: bool) -> None:
        modules = [
            (key, value)
            for key, value in list(scope.items())
            if isinstance(value, torch.nn.Module)
            and not (skip_private and (key.startswith("_") or key in _SKIPPED_GLOBALS))
        ]
        for key, module in modules:
            for pname, param in named_parameters(module):
                self._put(f"{key}.{pname}", param)


def _data_key(t: torch.Tensor) -> tuple[Any, ...] | None:
    """What makes two tensors the same values in memory (a detach() of a parameter is its data)."""
    try:
        if t.layout is not torch.strided or is_wrapped(t) or t.numel() == 0:
            return None
        return (t.data_ptr(), tuple(t.shape), tuple(t.stride()), t.dtype, t.device)
    except Exception:  # no storage of its own (meta, a subclass): not matched by data
        return None


_STOCK = {name: getattr(torch.nn.Module, name) for name in ("named_parameters", "_named_members", "named_modules")}


def named_parameters(module: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    """module.named_parameters(), same names and order, read straight from the modules' dicts: this runs for
    every module in the caller's scope on every recorded pass, and the generator chain of nn.Module costs ~2 ms
    on a 12-layer transformer. A class that overrides how parameters are listed is asked itself."""
    if any(getattr(type(module), name) is not stock for name, stock in _STOCK.items()):
        return list(module.named_parameters())
    out: list[tuple[str, torch.nn.Parameter]] = []
    seen_modules: set[int] = set()
    seen_params: set[int] = set()
    stack: list[tuple[str, torch.nn.Module]] = [("", module)]
    while stack:  # pre-order, children in registration order: named_modules()' order
        prefix, current = stack.pop()
        if id(current) in seen_modules:
            continue
        if type(current).named_modules is not _STOCK["named_modules"]:  # a child that lists itself differently
            return list(module.named_parameters())
        seen_modules.add(id(current))
        for name, param in current._parameters.items():
            if param is not None and id(param) not in seen_params:
                seen_params.add(id(param))
                out.append((prefix + name, param))  # type: ignore[arg-type]
        children = [(prefix + name + ".", child) for name, child in current._modules.items() if child is not None]
        stack.extend(reversed(children))
    return out


def module_variable(module: torch.nn.Module) -> str | None:
    """The caller's variable name for a module passed as names=, so its leaves read 'model.0.weight'."""
    frame = user_frame(sys._getframe(1))
    for scope in (frame.f_locals, frame.f_globals) if frame is not None else ():
        for key, value in scope.items():
            if value is module and not key.startswith("_"):
                return key
    return None
