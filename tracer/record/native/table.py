"""The tensor table of a pass recorded by the native hooks, with tensors.TensorTable's interface."""

from __future__ import annotations

from typing import Any

import torch

from ...model.records import Capture, Stats, TensorInfo
from ..tensors import SAMPLE, SMALL, TensorTable, digest_numbers, odd_info, readable

_PLACEHOLDER = torch.empty(0)  # what stands in the native table for a tensor summarised here (odd_info)


class NativeTable:
    """Handles are the native table's (native_hooks.cpp): its hooks and these calls share one numbering, and
    finish() hands every entry to a TensorTable, which summarises them exactly as it does its own."""

    def __init__(self, native_pass: Any, capture: Capture, max_values: int) -> None:
        self._pass = native_pass
        self.capture = capture
        self.max_values = max_values
        self._ready: dict[int, TensorInfo] = {}  # handle -> a tensor of another kind, summarised at once
        self._prestats: dict[int, Stats] = {}  # handle -> statistics computed before finish (sample_reduction.py)

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

    def compact(self) -> None:
        """The end of the pass: samples packed tight, the native row blocks back in their pool (native_hooks.cpp)."""
        self._pass.compact()

    def digest(self, handles: list[int]) -> list[tuple[float, float, float, int, int] | None]:
        """As TensorTable.digest, computed by the native table."""
        ready = self._ready
        numbers = list(self._pass.digest(handles))
        for k, h in enumerate(handles):
            info = ready.get(h)
            if info is not None:
                numbers[k] = None if info.stats is None else digest_numbers(info.stats)
        return [None if n is None else (float(n[0]), float(n[1]), float(n[2]), int(n[3]), int(n[4])) for n in numbers]

    def reducible(self) -> list[tuple[int, torch.Tensor, int, bool, tuple[float, int, int] | None]]:
        """As TensorTable.reducible, from the native table's entries."""
        out = []
        for h, (kind, _, _, _, numel, payload, whole, norm, _) in enumerate(self._pass.export_entries()):
            if kind in (SMALL, SAMPLE) and payload is not None and whole is None and h not in self._prestats:
                out.append((h, payload, numel, kind == SMALL, norm))
        return out

    def take_stats(self, stats: dict[int, Stats]) -> None:
        """As TensorTable.take_stats: the native table lets go of those samples."""
        self._prestats.update(stats)
        self._pass.drop(list(stats))

    def v_handle(self, node: int, slot: int) -> int | None:
        """The handle of the gradient that arrived at a node's input `slot` (None: none arrived)."""
        handle = int(self._pass.v_handle(node, slot))
        return None if handle < 0 else handle

    def finish(self) -> list[TensorInfo]:
        table = TensorTable(self.capture, self.max_values)
        table.absorb(self._pass.export_entries())
        table.take_stats(self._prestats, repack=False)
        self._pass.clear()
        infos = table.finish()
        for handle, info in self._ready.items():
            infos[handle] = info
        self._ready = {}
        return infos
