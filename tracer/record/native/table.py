"""The tensor table of a pass recorded by the native hooks, with tensors.TensorTable's interface."""

from __future__ import annotations

from typing import Any

import torch

from ...model.records import Capture, TensorInfo
from ..tensors import TensorTable, odd_info, readable

_PLACEHOLDER = torch.empty(0)  # what stands in the native table for a tensor summarised here (odd_info)


class NativeTable:
    """Handles are the native table's (native_hooks.cpp): its hooks and these calls share one numbering, and
    finish() hands every entry to a TensorTable, which summarises them exactly as it does its own."""

    def __init__(self, native_pass: Any, capture: Capture, max_values: int) -> None:
        self._pass = native_pass
        self.capture = capture
        self.max_values = max_values
        self._ready: dict[int, TensorInfo] = {}  # handle -> a tensor of another kind, summarised at once

    def __len__(self) -> int:
        return int(self._pass.size())

    def add(
        self,
        tensor: torch.Tensor | None,
        *,
        exact: bool = False,
        copy: bool = False,
        fresh: bool = False,
        exact_norm: bool = False,
        keep_copy: bool = False,
    ) -> int | None:
        """As TensorTable.add; an exact norm is computed at once (while the tensor is in cache), read by settle()."""
        if tensor is None:
            return None
        if not readable(tensor):  # sparse, quantized, nested, a torch.func wrapper: the native table reads none
            handle = int(self._pass.add(_PLACEHOLDER, False, True, False, False, False))
            self._ready[handle] = odd_info(tensor, self.max_values)
            return handle
        return int(self._pass.add(tensor, exact, copy, fresh, exact_norm, keep_copy))

    def add_default(self, tensor: torch.Tensor | None) -> int | None:
        return self.add(tensor)

    def settle(self) -> None:
        """Read the exact norms the hooks took (one device sync) and let go of those tensors."""
        self._pass.settle()

    def finish(self) -> list[TensorInfo]:
        table = TensorTable(self.capture, self.max_values)
        table.absorb(self._pass.export_entries())
        self._pass.clear()
        infos = table.finish()
        for handle, info in self._ready.items():
            infos[handle] = info
        self._ready = {}
        return infos
