"""Summarise torch tensors into TensorInfo: cheap work while the pass runs, batched work after it."""

from __future__ import annotations

import dataclasses
import math
import weakref
from collections import OrderedDict
from typing import Any

import numpy as np
import torch

from ..model.records import MAX_VALUES, Capture, Stats, TensorInfo
from .func_passes import unwrapped
from .fused_stats import fused_stats

SAMPLE_SIZE = 1024  # elements read from a large tensor in the default capture
# Read as SAMPLE_SIZE // SAMPLE_BLOCK evenly spaced runs of consecutive elements. Measured on 285 gradients of
# a transformer: runs of 4 touch a quarter of the cache lines of single elements (4.6x faster on tensors
# that left the cache) and estimate the norm about as well (median error 2.1%, 90th percentile 5.9%,
# worst 11%, against 1.7%, 4.3% and 9.1%); runs of 32 were faster still but up to 35% off.
SAMPLE_BLOCK = 4

# How an entry was captured: values kept, sampled, exact statistics now, copied whole for exact statistics
# later (too big to print, small enough to read), empty. capture="full" also keeps the whole tensor (_kept).
# The native table (native_hooks.cpp) uses the same numbers, plus _DEFER: a kept tensor whose exact
# statistics are computed here (a large seed, a complex gradient's magnitudes). _READY: a tensor of another kind
# (sparse, quantized, nested, a torch.func wrapper), summarised at once into its TensorInfo (see odd_info).
_VALUES, _SAMPLE, _STATS, _SMALL, _EMPTY, _DEFER, _READY = range(7)

SAMPLE, SMALL = _SAMPLE, _SMALL  # the kinds whose statistics can be computed early (sample_reduction.py)

_DTYPE_NAMES: dict[torch.dtype, str] = {}


def dtype_name(dtype: torch.dtype) -> str:
    name = _DTYPE_NAMES.get(dtype)
    if name is None:
        name = _DTYPE_NAMES[dtype] = str(dtype).removeprefix("torch.")
    return name


class _Rows:
    """Rows of SAMPLE_SIZE elements for samples, from blocks allocated a few at a time.

    Why: hundreds of small tensors made one by one during a pass sit between the large gradient buffers the
    engine allocates and frees, so the heap cannot reuse or return that memory; measured on the reference
    transformer that raised the step's peak memory by 12%. Rows of a few shared blocks do not.
    """

    BLOCK = 256

    def __init__(self) -> None:
        self._blocks: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}
        self._used: dict[tuple[torch.dtype, torch.device], int] = {}

    def take(self, like: torch.Tensor) -> torch.Tensor:
        """A fresh row for a tensor of `like`'s dtype and device."""
        key = (like.dtype, like.device)
        used = self._used.get(key, 0)
        blocks = self._blocks.setdefault(key, [])
        if used == len(blocks) * self.BLOCK:
            blocks.append(torch.empty(self.BLOCK, SAMPLE_SIZE, dtype=like.dtype, device=like.device))
        self._used[key] = used + 1
        return blocks[used // self.BLOCK][used % self.BLOCK]


class TensorTable:
    """Tensors seen during one pass; `add` returns a handle, `finish` turns all of them into TensorInfo.

    Why the split: the recorder's hooks run inside every backward node, so `add` only copies small tensors,
    takes a fixed-size sample of large ones (or exact statistics when the capture asks for them) and lets go
    of the tensor; building Python records happens once, after the pass, in batches.
    """

    def __init__(self, capture: Capture = "auto", max_values: int = MAX_VALUES) -> None:
        self.capture = capture
        self.max_values = max_values
        self._kind: list[int] = []
        self._meta: list[tuple[tuple[int, ...], str, str, int]] = []  # shape, dtype, device, numel
        self._payload: list[torch.Tensor | None] = []
        self._refs: list[weakref.ReferenceType[torch.Tensor] | None] = []
        self._versions: list[int] = []
        self._seen: dict[int, int] = {}
        self._want_norm: dict[int, torch.Tensor] = {}  # handle -> tensor whose exact norm settle() computes
        self._norms: dict[int, tuple[float, int, int]] = {}  # handle -> exact (norm, nan, inf), once settled
        self._kept: dict[int, torch.Tensor] = {}  # capture="full": handle -> the whole tensor
        self._ready: dict[int, TensorInfo] = {}  # handle -> the summary of a tensor of another kind (_READY)
        self._prestats: dict[int, Stats] = {}  # handle -> statistics computed before finish (reduce_samples)
        self._rows = _Rows()

    def __len__(self) -> int:
        return len(self._kind)

    def add_default(self, tensor: torch.Tensor | None) -> int | None:
        """add(tensor) with no options: the recorder's hot path, one call per gradient of every node."""
        if tensor is None:
            return None
        handle = self._seen.get(id(tensor))
        if handle is not None:
            ref = self._refs[handle]
            if ref is not None and ref() is tensor and self._versions[handle] == _version(tensor) >= 0:
                return handle
        return self._new(tensor, False, False, False)

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
        """Record `tensor`, returning its handle (None for None).

        exact: exact statistics even in the default capture. copy: snapshot a tensor that will change in place
        later (a leaf's .grad before accumulation). fresh: never reuse an earlier record of the same object.
        exact_norm: the tensor stays alive until settle() (a leaf's .grad after the pass), which then computes
        its exact norm together with all others in one batched call. keep_copy: capture="full" keeps a copy,
        not the tensor (a leaf's gradient, which AccumulateGrad may have made its .grad: the next pass accumulates
        into that in place). A tensor recorded earlier needs no copy: while this table held it, AccumulateGrad
        could not take it as .grad (it takes only gradients nobody else refers to) and copied it instead.
        """
        if tensor is None:
            return None
        if not (copy or fresh):
            handle = self._seen.get(id(tensor))
            if handle is not None:
                ref = self._refs[handle]
                # The same object as an earlier record (a node's v is usually its producer's vᵀJ), unchanged
                # since (same version counter): reuse it, unless it was only sampled and this must be exact.
                if (
                    ref is not None
                    and ref() is tensor
                    and self._versions[handle] == _version(tensor) >= 0
                    and not (exact and self._kind[handle] == _SAMPLE)
                ):
                    if exact_norm:
                        self._want_norm[handle] = tensor
                    return handle
        return self._new(tensor, exact, copy, exact_norm, keep_copy)

    def _new(self, original: torch.Tensor, exact: bool, copy: bool, exact_norm: bool, keep_copy: bool = False) -> int:
        tensor: torch.Tensor | None = original
        if _is_functorch_wrapped(original):  # a torch.func.grad pass's: its value, a level down (func_passes.py)
            tensor = unwrapped(original)  # None for vmap's batches: summarised by odd_info (shape only)
        if tensor is None or not readable(tensor):
            return self._add_ready(odd_info(original, self.max_values))
        tensor = tensor.detach() if tensor.requires_grad else tensor  # create_graph: values, not the graph
        numel = tensor.numel()
        handle = len(self._kind)
        self._meta.append(
            (tuple(tensor.shape), dtype_name(tensor.dtype), "cpu" if tensor.is_cpu else str(tensor.device), numel)
        )
        self._versions.append(_version(original))
        if numel == 0:
            kind, payload = _EMPTY, None
        elif tensor.is_complex():
            kind, payload = _STATS, exact_stats(tensor.abs())  # magnitudes; complex values are not kept
        elif numel <= self.max_values and numel <= SAMPLE_SIZE:
            payload = self._rows.take(tensor)[:numel]
            payload.copy_(tensor.reshape(-1))
            kind = _VALUES
        elif numel <= self.max_values:  # max_values above the row size: a copy of its own
            kind, payload = _VALUES, tensor.reshape(-1).clone()
        elif numel <= SAMPLE_SIZE:
            payload = self._rows.take(tensor)[:numel]  # read whole: as cheap as a sample, and exact
            payload.copy_(tensor.reshape(-1))
            kind = _SMALL
        elif exact or self.capture == "stats":
            kind, payload = _STATS, exact_stats(tensor)
        else:
            payload = self._rows.take(tensor)
            torch.take(tensor, _sample_index(numel, None if tensor.is_cpu else tensor.device), out=payload)
            kind = _SAMPLE
        self._kind.append(kind)
        self._payload.append(payload)
        if self.capture == "full" and kind in (_SAMPLE, _SMALL):
            # Keep the tensor itself (a reference, no copy: nothing writes into a gradient once it is passed
            # on); statistics stay as in the default capture, which is what keeps this capture affordable.
            self._kept[handle] = tensor.clone() if copy or keep_copy else tensor
        if copy:
            self._refs.append(None)
        else:
            self._refs.append(weakref.ref(original))
            self._seen[id(original)] = handle
        if exact_norm and kind == _SAMPLE:
            self._want_norm[handle] = tensor
        return handle

    def _add_ready(self, info: TensorInfo) -> int:
        """An entry already summarised (a tensor of another kind): no payload, nothing to reuse it by."""
        handle = len(self._kind)
        self._kind.append(_READY)
        self._meta.append((info.shape, info.dtype, info.device, info.numel))
        self._payload.append(None)
        self._refs.append(None)
        self._versions.append(-1)
        self._ready[handle] = info
        return handle

    def absorb(self, entries: tuple[tuple[Any, ...], ...]) -> None:
        """Append the native table's entries (native_hooks.cpp's export_entries), handles continuing here."""
        kinds, metas, payloads, kept, norms = self._kind, self._meta, self._payload, self._kept, self._norms
        for kind, shape, dtype, device, numel, payload, whole, norm, magnitudes in entries:
            handle = len(kinds)
            if kind == _DEFER and not readable(payload):  # sparse or another kind the native hooks kept whole
                self._ready[handle] = odd_info(payload, self.max_values)
                kind, payload = _READY, None
            elif kind == _DEFER:
                kind, payload = _STATS, exact_stats(payload.abs() if magnitudes else payload)
            kinds.append(kind)
            metas.append((shape, dtype_name(dtype), device, numel))
            payloads.append(payload)
            if whole is not None:
                kept[handle] = whole
            if norm is not None:
                norms[handle] = norm
        count = len(entries)
        self._refs.extend([None] * count)  # identity lookups happened in the native table
        self._versions.extend([-1] * count)

    def settle(self) -> None:
        """Compute the exact norms asked for and let go of those tensors: call at the end of the pass, before
        anything can change a leaf's .grad in place (the next pass, an optimizer's zero_grad)."""
        self._norms.update(self._exact_norms())
        self._want_norm = {}

    def compact(self) -> None:
        """The end of the pass: the rows in use copied into one tight tensor per dtype and device, the row blocks
        and the lookups by identity let go (no add follows). A pass recorded but not read yet then holds only its
        samples, not a block of 256 rows (1 MiB of float32) and a weak reference per tensor."""
        self.settle()
        groups: dict[tuple[torch.dtype, torch.device], list[int]] = {}
        for handle, payload in enumerate(self._payload):
            if payload is not None and self._kind[handle] in (_VALUES, _SMALL, _SAMPLE):
                groups.setdefault((payload.dtype, payload.device), []).append(handle)
        for handles in groups.values():
            parts = [self._payload[h] for h in handles]
            tight = torch.cat([p.reshape(-1) for p in parts if p is not None])
            offset = 0
            for h, part in zip(handles, parts, strict=True):
                assert part is not None
                length = part.numel()
                self._payload[h] = tight[offset : offset + length].view(part.shape)
                offset += length
        self._rows = _Rows()
        self._seen = {}
        self._refs = [None] * len(self._refs)

    def digest(self, handles: list[int]) -> list[tuple[float, float, float, int, int] | None]:
        """(norm, max |x|, share of zeros, NaN count, Inf count) per handle, for the pass's digest, from the same
        numbers its Trace shows: exact norms where taken (leaf gradients), max |x| and zeros of a large gradient
        from its sample. None where nothing numeric is held."""
        self.settle()
        out: list[tuple[float, float, float, int, int] | None] = []
        for h in handles:
            kind = self._kind[h] if 0 <= h < len(self._kind) else None
            stats: Stats | None = None
            if kind == _EMPTY:
                out.append((0.0, 0.0, 0.0, 0, 0))
                continue
            if kind in (_VALUES, _SMALL, _SAMPLE):
                stats = self._sampled_stats([h], exact=kind != _SAMPLE, norms=self._norms)[0]
            elif kind == _STATS:
                stats = _stats_from_row(self._exact_row(h).tolist(), self._meta[h][3])
            elif kind == _READY:
                stats = self._ready[h].stats
            out.append(None if stats is None else digest_numbers(stats))
        return out

    def finish(self) -> list[TensorInfo]:
        """Every recorded tensor as TensorInfo (list index = handle); the table is empty afterwards."""
        infos: list[TensorInfo | None] = [None] * len(self._kind)
        self.settle()
        norms = self._norms
        by_kind: dict[int, list[int]] = {}
        for handle, kind in enumerate(self._kind):
            by_kind.setdefault(kind, []).append(handle)
        for kind, handles in by_kind.items():
            if kind == _READY:
                for handle in handles:
                    infos[handle] = self._ready[handle]
                continue
            if kind == _EMPTY:
                stats: list[Stats | None] = [None] * len(handles)
            elif kind in (_VALUES, _SMALL, _SAMPLE):
                stats = list(self._sampled_stats(handles, exact=kind != _SAMPLE, norms=norms))
            else:
                rows = torch.stack([self._exact_row(h) for h in handles]).tolist()
                stats = [_stats_from_row(row, self._meta[h][3]) for h, row in zip(handles, rows, strict=True)]
            meta, payloads = self._meta, self._payload
            if kind == _VALUES:
                for handle, st in zip(handles, stats, strict=True):
                    shape, dtype, device, _ = meta[handle]
                    values = tuple(payloads[handle].reshape(-1).tolist())  # type: ignore[union-attr]
                    infos[handle] = TensorInfo(shape=shape, dtype=dtype, device=device, stats=st, values=values)
            else:
                empty = () if kind == _EMPTY else None
                kept = self._kept
                for handle, st in zip(handles, stats, strict=True):
                    shape, dtype, device, _ = meta[handle]
                    array = _as_array(kept[handle]) if handle in kept else None
                    infos[handle] = TensorInfo(
                        shape=shape, dtype=dtype, device=device, stats=st, values=empty, array=array
                    )
        self.__init__(self.capture, self.max_values)  # type: ignore[misc]  # release every tensor
        return infos  # type: ignore[return-value]

    def _exact_row(self, handle: int) -> torch.Tensor:
        payload = self._payload[handle]
        assert payload is not None
        return payload

    def _exact_norms(self) -> dict[int, tuple[float, int, int]]:
        """Exact (norm, nan, inf) of the tensors that asked for it, with one batched norm call."""
        if not self._want_norm:
            return {}
        handles = list(self._want_norm)
        tensors = [self._want_norm[h] for h in handles]
        try:
            norms = torch._foreach_norm(tensors)
            # one stack per dtype (they rarely mix), so one conversion to Python floats
            values = torch.stack(norms).tolist() if len({n.dtype for n in norms}) == 1 else [float(n) for n in norms]
        except (RuntimeError, AttributeError):  # pragma: no cover - mixed devices or an older torch
            values = [float(torch.linalg.vector_norm(t.double())) for t in tensors]
        out = {}
        for h, t, norm in zip(handles, tensors, values, strict=True):
            if math.isfinite(norm):
                out[h] = (norm, 0, 0)  # a finite norm rules out NaN and Inf exactly
            else:
                nan, inf = int(torch.isnan(t).sum()), int(torch.isinf(t).sum())
                out[h] = (_rescaled_norm(t) if nan == inf == 0 else norm, nan, inf)
        return out

    def _sampled_stats(
        self, handles: list[int], *, exact: bool, norms: dict[int, tuple[float, int, int]]
    ) -> list[Stats]:
        """Statistics of many small tensors or samples at once (see segment_stats); the ones reduced earlier
        (reduce_samples) as they were then."""
        pre = self._prestats
        todo = [h for h in handles if h not in pre]
        fresh = (
            segment_stats(
                [self._payload[h] for h in todo],
                [self._meta[h][3] for h in todo],
                [norms.get(h) for h in todo],
                exact=exact,
            )
            if todo
            else []
        )
        done = dict(zip(todo, fresh, strict=True))
        return [pre[h] if h in pre else done[h] for h in handles]

    def reducible(self) -> list[tuple[int, torch.Tensor, int, bool, tuple[float, int, int] | None]]:
        """(handle, sample, numel, exact, exact norm) of every entry whose statistics can be computed now and its
        values dropped: samples and whole small tensors too large to print (reduce_samples)."""
        self.settle()
        out = []
        for h, kind in enumerate(self._kind):
            payload = self._payload[h]
            if kind in (_SMALL, _SAMPLE) and payload is not None and h not in self._prestats and h not in self._kept:
                out.append((h, payload, self._meta[h][3], kind == _SMALL, self._norms.get(h)))
        return out

    def take_stats(self, stats: dict[int, Stats], *, repack: bool = True) -> None:
        """Statistics computed for reducible() entries: kept, and their samples let go."""
        self._prestats.update(stats)
        for h in stats:
            self._payload[h] = None
        if repack:
            self.compact()  # the values still held, packed again without the samples let go


def segment_stats(
    payloads: list[torch.Tensor | None],
    numels: list[int],
    exact_norms: list[tuple[float, int, int] | None],
    *,
    exact: bool,
) -> list[Stats]:
    """Statistics of many small tensors or samples at once, as segments of one array: `numels` are the tensors'
    sizes (a sample's norm is scaled to it), `exact_norms` the exact (norm, nan, inf) taken of some of them.
    Each segment's numbers depend on its own values only, so any grouping of tables gives the same Stats.

    numpy, not torch: these reductions are small, and torch would spread them over its threads, which
    stall on a busy machine waiting for each other; numpy's run in this thread.
    """
    flat = [p.reshape(-1) for p in payloads if p is not None]
    handles = list(range(len(flat)))
    lengths = [int(f.numel()) for f in flat]
    joined = torch.cat(flat) if len({f.dtype for f in flat}) == 1 else torch.cat([f.double() for f in flat])
    if joined.dtype not in (torch.float32, torch.float64):
        joined = joined.double()  # float16/bfloat16 have no numpy twin; integers count exactly as float64
    values = joined.cpu().numpy()
    starts = np.cumsum([0, *lengths[:-1]])
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow to Inf is a finding, not an error
        sumsq = np.add.reduceat(np.square(values, dtype=np.float64), starts)
        total = np.add.reduceat(values, starts, dtype=np.float64)
    nonzero = np.add.reduceat(values != 0, starts)
    low = np.minimum.reduceat(values, starts)
    high = np.maximum.reduceat(values, starts)
    rescaled: dict[int, float] = {}
    if np.isfinite(sumsq).all():  # a finite sum of squares rules out NaN and Inf in its segment
        nans = infs = np.zeros(len(lengths), dtype=np.int64)
    else:
        nans, infs = np.add.reduceat(np.isnan(values), starts), np.add.reduceat(np.isinf(values), starts)
        # Finite segments whose squares overflowed (|x| above ~1.3e154): their norm, scaled first (rare).
        for r in np.flatnonzero(~np.isfinite(sumsq) & (nans == 0) & (infs == 0)).tolist():
            segment = values[starts[r] : starts[r] + lengths[r]].astype(np.float64)
            peak = float(np.abs(segment).max())
            rescaled[r] = peak * float(np.sqrt(np.square(segment / peak).sum())) if peak else 0.0
    table = zip(
        handles,
        sumsq.tolist(),
        low.tolist(),
        high.tolist(),
        total.tolist(),
        nonzero.tolist(),
        nans.tolist(),
        infs.tolist(),
        lengths,
        strict=True,
    )
    out = []
    for r, (h, sq, lo, hi, tot, nz, nn, ni, n) in enumerate(table):
        tot = _snap(tot, n, lo, hi)
        if exact:
            norm = rescaled[r] if r in rescaled else (math.sqrt(sq) if sq == sq else math.nan)
            out.append(Stats(norm=norm, min=lo, max=hi, mean=tot / n, zeros=(n - nz) / n, nan=nn, inf=ni))
            continue
        exact_norm = exact_norms[h]
        if exact_norm is not None:
            norm, nan_count, inf_count = exact_norm
        elif r in rescaled:
            norm, nan_count, inf_count = rescaled[r] * math.sqrt(numels[h] / n), 0, 0
        else:
            norm = math.sqrt(sq * numels[h] / n) if sq == sq else math.nan
            nan_count, inf_count = nn, ni
        out.append(
            Stats(
                norm=norm,
                min=lo,
                max=hi,
                mean=tot / n,
                zeros=(n - nz) / n,
                nan=nan_count,
                inf=inf_count,
                sampled=n,
                norm_exact=exact_norm is not None,
            )
        )
    return out


_is_functorch_wrapped = getattr(torch._C._functorch, "is_functorch_wrapped_tensor", lambda t: False)
_STRIDED = torch.strided


def readable(t: torch.Tensor) -> bool:
    """Whether t is an ordinary dense tensor the table can copy and sample: not sparse, quantized, nested, nor
    one of torch.func's wrappers (functorch's levels, vmap's batches: no storage of their own). 'meta' tensors
    pass here and fail later, which records the pass as not readable (they have shapes but no values)."""
    return t.layout is _STRIDED and not (t.is_nested or t.is_quantized or _is_functorch_wrapped(t))


def odd_info(t: torch.Tensor, max_values: int = MAX_VALUES) -> TensorInfo:
    """A tensor of another kind (see readable) summarised now. Sparse: exact statistics over every element, the
    implicit zeros included, and its values when small; quantized: those of its dequantized values; nested
    tensors and torch.func's wrappers: shape (a nested tensor's: its number of components), dtype and device
    only. Never raises: what cannot be read is left out."""
    dtype = dtype_name(t.dtype)
    device = "cpu" if t.is_cpu else str(t.device)
    shape: tuple[int, ...] = ()
    try:
        if t.is_nested:
            return TensorInfo(shape=(int(t.size(0)),), dtype=dtype, device=device)
        shape = tuple(int(n) for n in t.shape)
        if not readable(t) and t.layout == torch.strided and not t.is_quantized:  # a torch.func wrapper
            return TensorInfo(shape=shape, dtype=dtype, device=device)
        with torch.no_grad():
            t = t.detach()
            numel = t.numel()
            if t.is_quantized:
                t = t.dequantize()
            elif numel <= max_values:
                t = t.to_dense()
            if t.layout == torch.strided:
                table = TensorTable("stats", max_values)
                handle = table.add(t, copy=True)
                assert handle is not None
                return dataclasses.replace(table.finish()[handle], dtype=dtype)
            explicit = (t.coalesce() if t.layout == torch.sparse_coo else t).values()
            if explicit.is_complex():
                explicit = explicit.abs()
            return TensorInfo(shape=shape, dtype=dtype, device=device, stats=_sparse_stats(explicit, numel))
    except Exception:  # shapes and dtype only: a summary must never fail the pass
        return TensorInfo(shape=shape, dtype=dtype, device=device)


def _sparse_stats(explicit: torch.Tensor, numel: int) -> Stats | None:
    """Exact statistics of a sparse tensor of `numel` elements from its explicit (coalesced) values."""
    if numel == 0:
        return None
    implicit = numel - explicit.numel()  # elements not stored: zeros
    if explicit.numel() == 0:
        return Stats(norm=0.0, min=0.0, max=0.0, mean=0.0, zeros=1.0, nan=0, inf=0)
    norm, low, high, total, nonzero, nan, inf = exact_stats(explicit).tolist()
    if implicit:
        low, high = min(low, 0.0), max(high, 0.0)
    total = _snap(total, numel, low, high)
    zeros = (numel - nonzero) / numel
    return Stats(norm=norm, min=low, max=high, mean=total / numel, zeros=zeros, nan=int(nan), inf=int(inf))


def _version(t: torch.Tensor) -> int:
    """The in-place version counter; -1 for a tensor that has none (made under inference_mode): never reused."""
    try:
        return int(t._version)
    except RuntimeError:
        return -1


def summarise(tensor: torch.Tensor | None, *, max_values: int = MAX_VALUES) -> TensorInfo | None:
    """One tensor to TensorInfo right away, with exact statistics."""
    table = TensorTable("stats", max_values)
    handle = table.add(tensor, copy=True)
    return None if handle is None else table.finish()[handle]


def exact_stats(t: torch.Tensor) -> torch.Tensor:
    """Exact statistics as one float64 row (norm, min, max, sum, nonzero, nan, inf): one pass over memory by the
    native kernel (fused_stats.py) where it applies, else torch's reductions."""
    x = t if t.is_floating_point() else t.double()
    row = fused_stats(x)
    return reduced_stats(x) if row is None else row


def reduced_stats(x: torch.Tensor) -> torch.Tensor:
    """exact_stats by torch's reductions, one pass over memory per reduction (what the kernel must agree with)."""
    mn, mx = torch.aminmax(x)
    norm = torch.linalg.vector_norm(x)
    total = x.sum()
    nonzero = torch.count_nonzero(x)
    if x.is_cpu and bool(torch.isfinite(norm)):
        # A finite norm rules out NaN and Inf; on the CPU checking costs no device sync.
        nan = inf = torch.zeros((), dtype=torch.int64)
    else:
        nan, inf = torch.isnan(x).sum(), torch.isinf(x).sum()
        if x.is_cpu and x.is_floating_point() and int(nan) == 0 and int(inf) == 0:
            norm = torch.tensor(_rescaled_norm(x), dtype=torch.float64)  # the squares overflowed, not the elements
    return torch.stack(
        [norm.double(), mn.double(), mx.double(), total.double(), nonzero.double(), nan.double(), inf.double()]
    )


def digest_numbers(stats: Stats) -> tuple[float, float, float, int, int]:
    """(norm, max |x|, zeros, NaN, Inf) of a summary: what a pass's digest keeps of a leaf's gradient."""
    peak = math.inf if stats.inf else max(abs(stats.min), abs(stats.max))
    return stats.norm, peak, stats.zeros, stats.nan, stats.inf


def _snap(total: float, count: int, low: float, high: float) -> float:
    """A sum within its own rounding error of zero is zero.

    Summing values that cancel leaves rounding noise (1e-17 for float64 values near 1) whose digits depend on
    the order of additions, which differs between torch, numpy and CPUs; printed as a mean it would make the
    same trace read differently on another machine. The bound is the float64 error of `count` additions of
    values no larger than max(|low|, |high|).
    """
    bound = count * 2.0**-52 * max(abs(low), abs(high))
    return 0.0 if abs(total) <= bound else total


def _rescaled_norm(x: torch.Tensor) -> float:
    """The 2-norm of finite values whose squares overflow their dtype: scaled by the largest magnitude first."""
    peak = float(x.abs().max())
    if peak == 0 or not math.isfinite(peak):
        return float(torch.linalg.vector_norm(x.double()))
    return peak * float(torch.linalg.vector_norm(x.double() / peak))


def _stats_from_row(row: list[float], numel: int) -> Stats:
    norm, mn, mx, total, nonzero, nan, inf = row
    total = _snap(total, numel, mn, mx)
    return Stats(norm=norm, min=mn, max=mx, mean=total / numel, zeros=1.0 - nonzero / numel, nan=int(nan), inf=int(inf))


def _as_array(t: torch.Tensor) -> np.ndarray[Any, Any]:
    """A read-only numpy view of a kept gradient (no copy for CPU float32/float64)."""
    if not t.is_cpu or t.dtype in (torch.bfloat16, torch.float16):
        t = t.to("cpu", torch.float32)
    array = t.numpy()
    array.flags.writeable = False
    return array


_INDEX_CACHE: OrderedDict[tuple[int, torch.device | None], torch.Tensor] = OrderedDict()


def _sample_index(numel: int, device: torch.device | None) -> torch.Tensor:
    """SAMPLE_SIZE flat positions: evenly spaced runs of SAMPLE_BLOCK consecutive elements, the first run at
    the start and the last at the end (cached: shapes repeat)."""
    key = (numel, device)
    index = _INDEX_CACHE.get(key)
    if index is None:
        runs = SAMPLE_SIZE // SAMPLE_BLOCK
        starts = torch.linspace(0, numel - SAMPLE_BLOCK, runs, dtype=torch.float64).round().long()
        index = (starts.unsqueeze(1) + torch.arange(SAMPLE_BLOCK)).reshape(-1)
        if device is not None:
            index = index.to(device)
        _INDEX_CACHE[key] = index
        if len(_INDEX_CACHE) > 512:
            _INDEX_CACHE.popitem(last=False)
    return index


sample_index = _sample_index  # the gradient samples' positions, which digest_builder.py reads parameters at too
