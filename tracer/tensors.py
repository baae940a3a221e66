"""Summarise torch tensors into TensorInfo: cheap work while the pass runs, batched work after it."""

from __future__ import annotations

import math
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch

from .model import Capture, Stats, TensorInfo

SAMPLE_SIZE = 1024  # elements kept from a large tensor in the default capture

# Column order of an exact-statistics row: computed in the hook, converted after the pass.
_NORM, _MIN, _MAX, _SUM, _NONZERO, _NAN, _INF = range(7)


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


@dataclass(slots=True)
class _Entry:
    shape: tuple[int, ...]
    dtype: str
    device: str
    numel: int
    kind: str  # 'values' | 'sample' | 'stats' | 'full' | 'empty'
    payload: torch.Tensor | None
    ref: weakref.ReferenceType[torch.Tensor] | None
    version: int = -1  # the tensor's in-place version counter when it was recorded


class TensorTable:
    """Tensors seen during one pass; each `add` returns a handle, `finish` turns all of them into TensorInfo.

    Why the split: the hooks run inside every backward node, so they only copy small tensors, take a
    fixed-size sample of large ones (or exact statistics when asked) and drop the reference; the Python
    work of building records happens once, after the pass, in batches.
    """

    def __init__(self, capture: Capture = "auto", max_values: int = 64) -> None:
        self.capture = capture
        self.max_values = max_values
        self._entries: list[_Entry] = []
        self._seen: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, tensor: torch.Tensor | None, *, exact: bool = False, copy: bool = False) -> int | None:
        """Record a tensor now; `exact` asks for exact statistics, `copy` for a snapshot of a tensor
        that will change in place later (a leaf's .grad before accumulation)."""
        if tensor is None:
            return None
        key = id(tensor)
        handle = self._seen.get(key)
        if handle is not None and not copy:
            ref = self._entries[handle].ref
            # Same object as an earlier record (a node's v is usually its producer's vᵀJ): reuse it,
            # unless the earlier one was only sampled and this one must be exact, or the tensor changed in
            # place since (the engine sums a fan-in's parts into the first part's tensor).
            earlier = self._entries[handle]
            if (
                ref is not None
                and ref() is tensor
                and earlier.version >= 0
                and earlier.version == _version(tensor)
                and (not exact or earlier.kind != "sample")
            ):
                return handle
        entry = self._capture(tensor.detach(), exact=exact, copy=copy)
        entry.version = _version(tensor)
        self._entries.append(entry)
        handle = len(self._entries) - 1
        if not copy:
            self._seen[key] = handle
            try:
                entry.ref = weakref.ref(tensor)
            except TypeError:  # pragma: no cover - tensors support weak references
                entry.ref = None
        return handle

    def _capture(self, t: torch.Tensor, *, exact: bool, copy: bool) -> _Entry:
        numel = t.numel()
        entry = _Entry(tuple(t.shape), dtype_name(t.dtype), str(t.device), numel, "empty", None, None)
        if numel == 0:
            return entry
        if t.is_complex():
            t = t.abs()  # statistics of magnitudes; complex values are not kept
            entry.kind = "stats"
            entry.payload = exact_stats(t)
        elif numel <= self.max_values:
            entry.kind = "values"
            entry.payload = t.clone()
        elif self.capture == "full":
            entry.kind = "full"
            entry.payload = t.clone() if copy else t
        elif exact or self.capture == "stats":
            entry.kind = "stats"
            entry.payload = exact_stats(t)
        else:
            entry.kind = "sample"
            entry.payload = torch.take(t, _sample_index(numel, t.device))
        return entry

    def finish(self) -> list[TensorInfo | None]:
        """Convert every recorded tensor to TensorInfo (index = handle)."""
        out: list[TensorInfo | None] = [None] * len(self._entries)
        rows = [(i, e) for i, e in enumerate(self._entries) if e.kind in ("values", "sample")]
        for (i, e), stats in zip(rows, _batched_stats([e for _, e in rows]), strict=True):
            values = _flat_values(e.payload) if e.kind == "values" else None
            out[i] = TensorInfo(e.shape, e.dtype, e.device, stats, values)
        exact_rows = [(i, e) for i, e in enumerate(self._entries) if e.kind in ("stats", "full")]
        if exact_rows:
            table = torch.stack([_exact_row(e) for _, e in exact_rows]).tolist()
            for (i, e), row in zip(exact_rows, table, strict=True):
                values = _flat_values(e.payload) if e.kind == "full" else None
                out[i] = TensorInfo(e.shape, e.dtype, e.device, _stats_from_row(row, e.numel), values)
        for i, e in enumerate(self._entries):
            if e.kind == "empty":
                out[i] = TensorInfo(e.shape, e.dtype, e.device, None, ())
        self._entries = []
        self._seen = {}
        return out


def _version(t: torch.Tensor) -> int:
    """The in-place version counter; -1 where a tensor has none (made under inference_mode): never reused."""
    try:
        return int(t._version)
    except RuntimeError:
        return -1


def _exact_row(e: _Entry) -> torch.Tensor:
    assert e.payload is not None
    return exact_stats(e.payload) if e.kind == "full" else e.payload


def summarise(tensor: torch.Tensor | None, *, max_values: int = 64, capture: Capture = "stats") -> TensorInfo | None:
    """One tensor to TensorInfo right away (exact statistics unless capture='auto')."""
    table = TensorTable(capture, max_values)
    handle = table.add(tensor, exact=capture != "auto", copy=True)
    return None if handle is None else table.finish()[handle]


def exact_stats(t: torch.Tensor) -> torch.Tensor:
    """Exact statistics as one float64 row (norm, min, max, sum, nonzero, nan, inf); one pass per reduction."""
    x = t if t.is_floating_point() else t.double()
    mn, mx = torch.aminmax(x)
    norm = torch.linalg.vector_norm(x)
    total = x.sum()
    nonzero = torch.count_nonzero(x)
    if x.device.type == "cpu" and bool(torch.isfinite(norm)):
        # A finite norm rules out NaN and Inf; on the CPU the check costs no device sync.
        nan = inf = torch.zeros((), dtype=torch.int64)
    else:
        nan, inf = torch.isnan(x).sum(), torch.isinf(x).sum()
        if x.device.type == "cpu" and x.is_floating_point() and int(nan) == 0 and int(inf) == 0:
            # Finite elements, infinite norm: the squares overflowed x's dtype (float32 above |x| ~ 1.8e19).
            # Rare, so the rescaled copy is affordable here.
            peak = torch.maximum(mn.abs(), mx.abs()).double()
            norm = peak * torch.linalg.vector_norm(x.double() / peak)
    return torch.stack(
        [norm.double(), mn.double(), mx.double(), total.double(), nonzero.double(), nan.double(), inf.double()]
    )


def _stats_from_row(row: list[float], numel: int) -> Stats:
    return Stats(
        norm=row[_NORM],
        min=row[_MIN],
        max=row[_MAX],
        mean=row[_SUM] / numel,
        zeros=1.0 - row[_NONZERO] / numel,
        nan=int(row[_NAN]),
        inf=int(row[_INF]),
    )


_INDEX_CACHE: OrderedDict[tuple[int, str], torch.Tensor] = OrderedDict()


def _sample_index(numel: int, device: torch.device) -> torch.Tensor:
    """SAMPLE_SIZE evenly spaced flat positions, first and last included (cached: shapes repeat)."""
    key = (numel, str(device))
    index = _INDEX_CACHE.get(key)
    if index is None:
        index = torch.linspace(0, numel - 1, SAMPLE_SIZE, dtype=torch.float64).round().long().to(device)
        _INDEX_CACHE[key] = index
        if len(_INDEX_CACHE) > 512:
            _INDEX_CACHE.popitem(last=False)
    return index


def _flat_values(t: torch.Tensor | None) -> tuple[Any, ...]:
    assert t is not None
    return tuple(t.reshape(-1).tolist())


def _batched_stats(entries: list[_Entry]) -> list[Stats]:
    """Statistics of many small tensors and samples at once: one padded float64 matrix, masked reductions."""
    if not entries:
        return []
    flat = [e.payload.reshape(-1).to("cpu", torch.float64) for e in entries]  # type: ignore[union-attr]
    counts = [int(f.numel()) for f in flat]
    lengths = torch.tensor(counts)
    # pad_sequence fills the padded matrix in one call instead of one slice assignment per tensor
    matrix = torch.nn.utils.rnn.pad_sequence(flat, batch_first=True)
    width = matrix.shape[1]
    mask = torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)
    nan = torch.isnan(matrix) & mask
    inf = torch.isinf(matrix) & mask
    sumsq = (matrix * matrix).sum(1)
    # Squares overflow float64 above |x| ~ 1.3e154 while the elements are finite: also keep the norm rescaled
    # by each row's largest magnitude, used where the plain sum overflowed.
    peak = matrix.abs().amax(1)
    scaled = ((matrix / peak.clamp_min(1e-300).unsqueeze(1)) ** 2).sum(1)
    total = matrix.sum(1)
    zeros = ((matrix == 0) & mask).sum(1)
    mn = matrix.masked_fill(~mask, math.inf).amin(1)
    mx = matrix.masked_fill(~mask, -math.inf).amax(1)
    table = torch.stack(
        [sumsq, mn, mx, total, zeros.double(), nan.sum(1).double(), inf.sum(1).double(), peak, scaled], 1
    )
    stats = []
    for e, (sq, lo, hi, tot, zc, nn, ni, pk, sc), n in zip(entries, table.tolist(), counts, strict=True):
        exact = e.kind == "values"
        scale = 1.0 if exact else e.numel / n
        if math.isinf(sq) and nn == 0 and ni == 0:
            norm = pk * math.sqrt(sc * scale)
        else:
            norm = math.sqrt(sq * scale) if sq == sq else math.nan
        stats.append(
            Stats(
                norm=norm,
                min=lo,
                max=hi,
                mean=tot / n,
                zeros=zc / n,
                nan=int(nn),
                inf=int(ni),
                exact=exact,
                sampled=None if exact else n,
            )
        )
    return stats
