"""What a small backward node saved from its forward call (x, the exponent, dim...), as short text for its label."""

from __future__ import annotations

from typing import Any

import torch

from ..model.textfmt import num

PREFIX = "_saved_"
MAX_ELEMENTS = 8  # a saved tensor up to this size is written out; a larger one by its shape
MAX_ARGUMENTS = 6
# Sizes and strides torch saves for its own bookkeeping say nothing the shapes in the picture do not.
_SKIPPED_SUFFIXES = ("_sym_sizes", "_sym_strides", "_sym_numel", "_strides")
_UINT64 = 2**64


def saved_arguments(node: Any) -> str | None:
    """'self=[-2, -1, 0, 1, 2], exponent=2' for a PowBackward0 of x**2; None when it saved nothing telling.

    Read in the node's post-hook, where the saved tensors are still alive; only torch's C++ nodes expose
    them as `_saved_<argument>` attributes, so custom Functions get None. Never raises: a saved value that
    cannot be read (freed, or an unsupported type) is left out.
    """
    parts: list[str] = []
    for attribute in sorted(a for a in dir(node) if a.startswith(PREFIX)):
        argument = attribute[len(PREFIX) :]
        if argument.endswith(_SKIPPED_SUFFIXES):
            continue
        try:
            text = _describe(getattr(node, attribute))
        except Exception:  # a freed saved tensor raises; the label simply goes without it
            continue
        if text is not None and f"{argument}={text}" not in _DEFAULTS:
            parts.append(f"{argument}={text}")
    if not parts:
        return None
    return ", ".join(_forward_order(parts)[:MAX_ARGUMENTS])


# Arguments at their default value say nothing (addmm's alpha=1, beta=1 on every nn.Linear).
_DEFAULTS = frozenset({"alpha=1", "beta=1"})


def _forward_order(parts: list[str]) -> list[str]:
    """`self` first, as in the forward call (x.pow(2) is pow(self, exponent)); the rest alphabetically."""
    return sorted(parts, key=lambda p: (not p.startswith("self="), p))


def _describe(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        return _tensor(value)
    if isinstance(value, bool | int | float):
        return num(_signed(value))
    if isinstance(value, tuple | list) and all(isinstance(v, bool | int | float) for v in value):
        return "(" + ", ".join(num(_signed(v)) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, str):
        return repr(value)
    return None


def _signed(value: bool | int | float) -> bool | int | float:
    """torch hands saved int64 arguments to Python as unsigned: dim=-1 arrives as 2**64 - 1."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= _UINT64 // 2:
        return value - _UINT64
    return value


def _tensor(t: torch.Tensor) -> str:
    if t.numel() > MAX_ELEMENTS or t.is_complex() or t.layout != torch.strided:
        return "tensor" + str(list(t.shape))
    values = t.detach().cpu()
    if values.dtype in (torch.float16, torch.bfloat16):
        values = values.float()
    return _nested(values.tolist())


def _nested(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_nested(v) for v in value) + "]"
    return num(value)
