"""Which elements an in-place write into part of a tensor (a CopySlices node, `y[1:3] = ...`) overwrote.

torch keeps the written view's geometry inside the node, in C++, and exposes none of it to Python (no saved
tensors, no metadata). What a pass records still tells it, where it was recorded:
- the local Jacobian J: an element left alone passes its v through unchanged (a 1 in its own column of the tensor
  before the write, nothing else), so the rows of J that differ from that are the elements written;
- else the gradient sent to the tensor before the write, which is v with the written elements replaced (by 0
  for `y[i] = value`): where v is not 0 and that gradient differs from v, the element was written. Where v is 0 this
  cannot tell, so it answers only when v has no zero.
Otherwise the answer is "not known", said as such, never guessed.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from ..model.records import Shape, Step

NAME = "CopySlices"


@dataclass(frozen=True)
class SliceWrite:
    """What is known about one CopySlices node's write."""

    shape: Shape | None  # the tensor written into (the node's output)
    written: tuple[tuple[int, ...], ...] | None  # the indices written, row-major; None: not knowable
    source: str  # how it was found: 'J', 'gradient', or '' when not knowable
    value_shape: Shape | None  # the shape of the gradient sent to the written value, when there is one

    @property
    def index_text(self) -> str | None:
        """The written part as an index: '[1:3]', '[0, 2]', or a list of indices; None when not known."""
        if self.written is None or self.shape is None:
            return None
        return index_text(self.written, self.shape)


def slice_write(step: Step) -> SliceWrite | None:
    """What the pass tells about the write of a CopySlices node; None for any other node."""
    if step.name != NAME:
        return None
    shape = step.v[0].shape if step.v and step.v[0] is not None else None
    value = next((g for g in step.vjp[1:] if g is not None), None)
    value_shape = value.shape if value is not None else None
    written = _from_jacobian(step)
    if written is not None:
        return SliceWrite(shape=shape, written=written, source="J", value_shape=value_shape)
    written = _from_gradient(step)
    if written is not None:
        return SliceWrite(shape=shape, written=written, source="gradient", value_shape=value_shape)
    return SliceWrite(shape=shape, written=None, source="", value_shape=value_shape)


def _from_jacobian(step: Step) -> tuple[tuple[int, ...], ...] | None:
    j = step.jacobian
    if j is None or len(j.rows) != 1 or j.rows[0] is None or not j.matrix:
        return None
    shape = j.rows[0]
    size = math.prod(shape)
    base = j.cols[0] if j.cols else None
    if base is not None and math.prod(base) != size:
        return None
    columns = [math.prod(c) if c is not None else 0 for c in j.cols]
    if sum(columns) != len(j.matrix[0]):
        return None
    rows = []
    for r, line in enumerate(j.matrix):
        through = [0.0] * len(line)
        if base is not None:
            through[r] = 1.0  # the base's columns come first: edge 0
        if list(line) != through:
            rows.append(r)
    return tuple(_unflat(r, shape) for r in rows)


def _from_gradient(step: Step) -> tuple[tuple[int, ...], ...] | None:
    v = step.v[0] if step.v else None
    before = step.vjp[0] if step.vjp else None
    if v is None or before is None or v.values is None or before.values is None or v.shape != before.shape:
        return None
    if any(x == 0 for x in v.values):
        return None
    return tuple(_unflat(r, v.shape) for r, (a, b) in enumerate(zip(v.values, before.values, strict=True)) if a != b)


def _unflat(flat: int, shape: Shape) -> tuple[int, ...]:
    index = []
    for d in reversed(shape):
        index.append(flat % d)
        flat //= d
    return tuple(reversed(index))


def index_text(written: tuple[tuple[int, ...], ...], shape: Shape) -> str:
    """The written indices as torch indexing would say them: a box of whole ranges as slices ('[1:3]', '[0]',
    '[:, 2]'), trailing whole dimensions left out; anything else as the list of indices (the first few)."""
    if not written:
        return "nothing"
    if not shape:
        return "[]"
    per_dim = [sorted({ix[d] for ix in written}) for d in range(len(shape))]
    box = all(vals == list(range(vals[0], vals[-1] + 1)) for vals in per_dim)
    if box and len(written) == math.prod(len(v) for v in per_dim):
        parts = []
        for vals, size in zip(per_dim, shape, strict=True):
            if len(vals) == size and size != 1:
                parts.append(":")
            elif len(vals) == 1:
                parts.append(str(vals[0]))
            else:
                parts.append(f"{vals[0]}:{vals[-1] + 1}")
        while len(parts) > 1 and parts[-1] in (":", "0") and _whole(parts[-1], shape[len(parts) - 1]):
            parts.pop()
        return "[" + ", ".join(parts) + "]"
    shown = ["[" + ", ".join(str(i) for i in ix) + "]" for ix in itertools.islice(written, 4)]
    more = f" and {len(written) - 4} more" if len(written) > 4 else ""
    return ", ".join(shown) + more


def _whole(part: str, size: int) -> bool:
    """Whether an index part covers its whole dimension (':' , or '0' of a dimension of size 1)."""
    return part == ":" or (part == "0" and size == 1)
