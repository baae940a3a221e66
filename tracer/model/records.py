"""Plain, frozen records of one backward pass: what the recorder writes and everything else reads."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .errors import ValuesNotKeptError
from .seam import Displayable, upstairs
from .why_records import StubCause

if TYPE_CHECKING:  # pragma: no cover - typing only; importing the model must stay cheap
    import networkx

Shape = tuple[int, ...]
NDArray = np.ndarray  # every value of a large tensor, kept with capture="full"
Scalar = float | int | bool
Capture = Literal["auto", "stats", "full"]
PassKind = Literal["backward", "grad"]
LeafKind = Literal["leaf", "retained", "input"]

CAPTURES: tuple[str, ...] = ("auto", "stats", "full")
MAX_VALUES = 64  # the values of gradients with at most this many elements are kept (capture="auto")
JACOBIAN_LIMIT = 64  # a node's local Jacobian is recorded when both its sides have at most this many elements


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Stats:
    """Summary statistics of a tensor, exact or estimated from `sampled` evenly spaced elements.

    In the default capture large intermediate gradients are summarised from a fixed-size sample (reading
    every element of every gradient would cost more than the backward pass itself); `norm_exact` says the
    norm was still computed from every element (leaf gradients), which also makes a zero NaN/Inf count exact.
    """

    norm: float
    min: float
    max: float
    mean: float
    zeros: float  # share of elements equal to zero, 0..1
    nan: int
    inf: int
    sampled: int | None = None  # None: every element was read; else how many were
    norm_exact: bool = True

    @property
    def exact(self) -> bool:
        return self.sampled is None

    @property
    def finite(self) -> bool:
        return self.nan == 0 and self.inf == 0 and math.isfinite(self.norm)

    def __repr__(self) -> str:
        return f"Stats({self._fields()})"

    def _fields(self) -> str:
        """'norm=14.28, min=1, max=3, mean=2, zeros=0%' at 4 significant digits; NaN/Inf counts and the sample
        size only when there are any (the exact numbers are the attributes)."""
        parts = [f"norm={_g(self.norm)}", f"min={_g(self.min)}", f"max={_g(self.max)}", f"mean={_g(self.mean)}"]
        parts.append(f"zeros={_g(100 * self.zeros)}%")
        parts += [f"{name}={count}" for name, count in (("nan", self.nan), ("inf", self.inf)) if count]
        if self.sampled is not None:
            parts.append(f"sampled={self.sampled}" + ("" if self.norm_exact else ", norm_exact=False"))
        return ", ".join(parts)


def _g(x: float) -> str:
    return f"{x:.4g}" if isinstance(x, float) else str(x)


class DType(str):
    """A recorded dtype's name ('float32') that also compares equal to torch's and numpy's dtype for that name:
    `info.dtype == torch.float64`, `info.dtype == np.float64` and `info.dtype == "float64"` all hold. The model
    does not import torch: a torch dtype is recognised by its type's name and its text ('torch.float64')."""

    __slots__ = ()
    __hash__ = str.__hash__  # equal to its plain name as a dict key; torch dtypes hash differently

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return str.__eq__(self, other)
        if isinstance(other, np.dtype) or (isinstance(other, type) and issubclass(other, np.generic)):
            return bool(np.dtype(other).name == str(self))
        if type(other).__name__ == "dtype" and type(other).__module__ == "torch":
            return str(other) == f"torch.{self}"
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal


_TORCH_DEFAULT_DTYPES = ("float32", "int64", "bool")  # what torch's repr leaves unsaid


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class TensorInfo:
    """A recorded tensor: shape, dtype, device, statistics, and its values when small (or capture="full").

    Where the values were kept it reads and computes like a tensor: its repr shows them as torch does,
    `np.asarray(info)` and `torch.as_tensor(info)` give them (the array protocol and DLPack), and torch functions
    accept it where they take a tensor (`torch.allclose(x.grad, info)`, through `__torch_function__`). Where only
    statistics were kept, those raise ValuesNotKeptError, which says how to keep the values.
    """

    shape: Shape
    dtype: str  # the name, 'float32'; held as a DType, which also equals torch.float32
    device: str = "cpu"
    stats: Stats | None = None  # None for zero-size tensors
    values: tuple[Scalar, ...] | None = None  # kept when small (max_values), row-major
    array: NDArray | None = field(default=None, compare=False, repr=False)  # capture="full": all values

    def __post_init__(self) -> None:
        if type(self.dtype) is not DType:
            object.__setattr__(self, "dtype", DType(self.dtype))

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def norm(self) -> float | None:
        return None if self.stats is None else self.stats.norm

    @property
    def kept(self) -> bool:
        """Whether every value was kept (small tensors, or capture="full"), not only statistics."""
        return self.values is not None or self.array is not None

    def flat(self) -> np.ndarray[Any, Any] | None:
        """Every value, flattened, as float64 (from `values` or `array`); None when only statistics were kept."""
        if self.values is not None:
            return np.asarray(self.values, dtype=np.float64)
        if self.array is not None:
            return np.asarray(self.array, dtype=np.float64).reshape(-1)
        return None

    def tolist(self) -> Any:
        """The values nested like the tensor (a bare number for 0-d); raises when they were not kept."""
        if self.values is None and self.array is not None:
            return self.array.tolist()
        if self.values is None:
            raise self._not_kept("tolist()")
        return _nest(list(self.values), self.shape)

    def numpy(self) -> np.ndarray[Any, Any]:
        """The values as a new numpy array of the recorded shape and dtype (a dtype numpy lacks, e.g. bfloat16,
        as float32); raises ValuesNotKeptError when only statistics were kept."""
        return self._numpy("numpy()")

    def _numpy(self, asked: str) -> np.ndarray[Any, Any]:
        dtype = _numpy_dtype(self.dtype)
        if self.array is not None and self.values is None:
            return np.array(self.array, dtype=dtype).reshape(self.shape)
        if self.values is None:
            raise self._not_kept(asked)
        return np.array(self.values, dtype=dtype).reshape(self.shape)

    def as_tensor(self) -> Any:
        """The values as a new torch tensor of the recorded shape and dtype (on the CPU)."""
        return self._tensor("torch.as_tensor()")

    def _tensor(self, asked: str) -> Any:
        import torch

        dtype = getattr(torch, self.dtype)
        if self.values is None and self.array is None:
            raise self._not_kept(asked)
        if self.values is None:
            return torch.from_numpy(np.array(self.array)).reshape(self.shape).to(dtype)
        return torch.tensor(self.tolist(), dtype=dtype).reshape(self.shape)

    # numpy's array protocol: np.asarray(info), np.allclose(info, ...)
    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray[Any, Any]:
        if copy is False:
            raise ValueError("a recorded tensor's values are rebuilt on each request: np.asarray cannot avoid a copy")
        values = self._numpy("np.asarray()")
        return values if dtype is None else values.astype(dtype)

    # DLPack: torch.as_tensor(info) and torch.tensor(info) read the values through it, in the recorded dtype
    def __dlpack__(self, *args: Any, **kwargs: Any) -> Any:
        return self.as_tensor().__dlpack__(*args, **kwargs)

    def __dlpack_device__(self) -> Any:
        return self.as_tensor().__dlpack_device__()

    @classmethod
    def __torch_function__(
        cls, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        """A torch function given a recorded tensor gets its values as a tensor (on the device of the other
        tensor arguments): `torch.allclose(x.grad, info)`, `x.grad - info`. Only statistics: ValuesNotKeptError."""
        kwargs = kwargs or {}
        device = next((d for d in map(_tensor_device, (*args, *kwargs.values())) if d is not None), None)
        asked = f"torch.{getattr(func, '__name__', 'function')}()"
        return func(*_as_tensors(args, device, asked), **_as_tensors(kwargs, device, asked))

    def __repr__(self) -> str:
        extra = [] if self.device == "cpu" else [f"device='{self.device}'"]
        torch_dtype = f"dtype=torch.{self.dtype}"
        if self.numel == 0:
            return ", ".join([f"TensorInfo([], shape={list(self.shape)}", torch_dtype, *extra]) + ")"
        if not self.kept:
            shown = [f"shape={list(self.shape)}", torch_dtype, *extra]
            if self.stats is not None:
                shown.append(self.stats._fields())
            return f"TensorInfo({', '.join(shown)})"
        if self.dtype not in _TORCH_DEFAULT_DTYPES:
            extra.insert(0, torch_dtype)
        return f"TensorInfo({', '.join([_values_text(self.numpy()), *extra])})"

    def _not_kept(self, asked: str) -> ValuesNotKeptError:
        stats = "" if self.stats is None else f" ({self.stats._fields()})"
        return ValuesNotKeptError(
            f"{asked}: the values of this recorded {list(self.shape)} {self.dtype} tensor were not kept, only its "
            f"statistics{stats}, which are in its .stats. To keep every value, record with "
            f"tracer.record(capture='full'), or with max_values={self.numel} or more (tensors with at most "
            f"max_values elements keep their values; the default is {MAX_VALUES})."
        )


def _numpy_dtype(name: str) -> np.dtype[Any]:
    try:
        return np.dtype(name)
    except TypeError:  # bfloat16, float8_*: numpy has no such type; float32 holds their values exactly
        return np.dtype(np.float32)


def _values_text(values: np.ndarray[Any, Any]) -> str:
    """The values laid out as torch's repr does: 4 decimals (a bare '1.' when every value is whole), scientific
    notation for a wide range, '...' in the middle of long tensors, rows aligned under the opening bracket."""
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    whole = values.dtype.kind == "f" and bool(np.all(finite == np.round(finite)))
    return np.array2string(
        values,
        separator=", ",
        prefix="TensorInfo(",
        precision=4,
        floatmode="maxprec_equal" if whole else "fixed",
        threshold=1000,
        edgeitems=3,
        max_line_width=80,
    )


def _tensor_device(arg: Any) -> Any:
    """The device of a torch tensor among a torch function's arguments (duck-typed: the model does not
    import torch), else None."""
    if isinstance(arg, TensorInfo) or not all(hasattr(arg, a) for a in ("device", "grad_fn", "requires_grad")):
        return None
    return arg.device


def _as_tensors(obj: Any, device: Any, asked: str) -> Any:
    """A torch function's arguments with each recorded tensor as a torch tensor (`asked` names the function in
    the error where only statistics were kept)."""
    if isinstance(obj, TensorInfo):
        tensor = obj._tensor(asked)
        return tensor if device is None else tensor.to(device)
    if isinstance(obj, tuple | list):
        return type(obj)(_as_tensors(item, device, asked) for item in obj)
    if isinstance(obj, dict):
        return {key: _as_tensors(item, device, asked) for key, item in obj.items()}
    return obj


def _nest(flat: list[Scalar], shape: Shape) -> Any:
    if not shape:
        return flat[0]
    if len(shape) == 1:
        return flat
    step = math.prod(shape[1:])
    return [_nest(flat[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


@dataclass(frozen=True, slots=True, kw_only=True)
class Edge:
    """One next edge of a node: where its vᵀJ goes. `target=None`: that forward input needs no gradient."""

    target: int | None
    input_nr: int = 0  # which forward output of the target node this gradient belongs to


@dataclass(frozen=True, slots=True, kw_only=True)
class Jacobian:
    """A node's local Jacobian: rows follow its forward outputs (flattened), columns its next edges."""

    rows: tuple[Shape | None, ...]  # per forward output; None: no gradient arrived there (no rows)
    cols: tuple[Shape | None, ...]  # per next edge; None: the node sends no gradient there (no columns)
    matrix: tuple[tuple[float, ...], ...]

    @property
    def size(self) -> tuple[int, int]:
        return len(self.matrix), (len(self.matrix[0]) if self.matrix else 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    """Whether the vᵀJ a node sent equals v times its Jacobian (a wrong custom backward shows up here)."""

    ok: bool
    max_error: float  # largest |vjp - vᵀJ| over all elements
    tolerance: float
    method: str = "one-hot"  # how J was obtained: 'one-hot' calls of the node, or 'numeric' from the forward


class NoteKind(Enum):
    """What a Step's note is about, so that readers test the kind, never the wording of the text."""

    RAISED = "raised"  # the node raised: the pass stopped there ('raised RuntimeError: ...')
    COMPILED = "compiled"  # a torch.compile region: its steps are hidden and its Jacobian is not computed
    NO_JACOBIAN = "no-jacobian"  # the local Jacobian could not be computed (not real, torch-internal, raised)
    UNCHECKED = "unchecked"  # J holds Inf or NaN: vᵀJ = v·J was checked without those elements, or not at all
    NO_REFERENCE = "no-reference"  # a custom Function whose forward could not give an independent J
    DISAGREES = "disagrees"  # a custom Function whose backward disagrees with J from its forward
    BUDGET = "budget"  # J not computed during the pass: its budget of local Jacobians was spent (jacobian_budget.py)


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One backward node: executed (a step, numbered by execution order) or reached but not executed."""

    id: int
    name: str  # 'MulBackward0', 'AccumulateGrad', 'CopySlices', a custom Function's 'MyFnBackward'
    op: str  # the forward operation it came from, in plain words ('mul', 'Sq.apply', 'leaf x')
    executed: bool
    v: tuple[TensorInfo | None, ...] = ()  # gradient arriving, one entry per forward output
    vjp: tuple[TensorInfo | None, ...] = ()  # gradient sent on, one entry per next edge
    edges: tuple[Edge, ...] = ()
    jacobian: Jacobian | None = None
    check: Check | None = None
    source: str | None = None  # 'file.py:12' of the forward op, when known
    module: str | None = None  # nn.Module path whose forward created this node, when known
    leaf: str | None = None  # AccumulateGrad: the name of the leaf it accumulates into
    note: str | None = None  # why something is missing (e.g. the Jacobian could not be computed)
    note_kind: NoteKind | None = None  # what the note is about; None without a note (or an old file's unknown one)

    @property
    def step(self) -> int | None:
        """The 1-based execution step number, or None when the node did not run."""
        return self.id if self.executed else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Seed:
    """The seed v of one output: what torch.autograd.backward actually used for it."""

    index: int
    name: str | None  # the variable holding the output, when known
    shape: Shape
    dtype: str
    v: TensorInfo | None
    target: int | None  # id of the node the seed enters (the output's grad_fn, or a leaf's AccumulateGrad)
    input_nr: int = 0
    implicit: bool | None = None  # True: gradient=None and torch made ones; None: not known

    @property
    def output_name(self) -> str:
        """The variable holding the output, else 'output' (other spellings: tracer/analyse/naming.py)."""
        return self.name or "output"


@dataclass(frozen=True, slots=True, kw_only=True)
class Leaf:
    """A tensor whose gradient the pass delivers: a leaf's .grad, a retain_grad() tensor, or a grad() input."""

    name: str
    kind: LeafKind
    shape: Shape
    dtype: str
    node: int | None  # the AccumulateGrad (leaf) or grad_fn (retained) node; None when not reached
    grad: TensorInfo | None = None  # what this pass added / returned
    grad_before: TensorInfo | None = None  # .grad before the pass
    grad_total: TensorInfo | None = None  # .grad after the pass
    reason: str | None = None  # why it got no gradient
    input_nr: int = 0  # which forward output of `node` holds this tensor's gradient (retained / inputs=)
    value: TensorInfo | None = None  # the leaf's own values (x in y = x**2) when small; read before the pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    """How the pass was run and recorded."""

    retain_graph: bool = False
    create_graph: bool = False
    inputs: tuple[str, ...] | None = None
    capture: Capture = "auto"
    max_values: int = MAX_VALUES
    jacobian_limit: int = JACOBIAN_LIMIT


@dataclass(frozen=True, kw_only=True)
class Trace:
    """One recorded backward pass: seeds, every node with its v and vᵀJ, and the leaves' gradients."""

    kind: PassKind
    seeds: tuple[Seed, ...]
    nodes: tuple[Step, ...]  # executed nodes in step order, then those reached but not executed
    leaves: Mapping[str, Leaf]
    options: Options = field(default_factory=Options)
    index: int = 1  # pass number within a record() block
    label: str | None = None  # e.g. 'cell 3' or 'script.py'
    source: str | None = None  # 'file.py:12' where the pass was started
    complete: bool = True
    error: str | None = None  # the exception that stopped an incomplete pass
    notes: tuple[str, ...] = ()
    torch_version: str = ""
    rank: int | None = None  # torch.distributed rank of the process that recorded the pass, when initialised
    modules: Mapping[str, str] = field(default_factory=dict)  # module path -> class name (module view)
    # why each dashed "no grad" stub has no gradient, and the line that cut it: only with record(forward=True)
    stubs: tuple[StubCause, ...] = ()

    @property
    def steps(self) -> list[Step]:
        """The executed nodes in the order the autograd engine ran them."""
        return [n for n in self.nodes if n.executed]

    @property
    def unexecuted(self) -> list[Step]:
        """Nodes reached from the outputs that the engine did not run (pruned by inputs=, or stopped early)."""
        return [n for n in self.nodes if not n.executed]

    def node(self, node_id: int) -> Step:
        """The node with this id: a lookup, not a search (thousands of nodes are looked up while drawing)."""
        try:
            return self._nodes_by_id[node_id]
        except KeyError:
            raise KeyError(f"no node {node_id} in this trace (ids are 1..{len(self.nodes)})") from None

    @cached_property
    def _nodes_by_id(self) -> dict[int, Step]:
        return {n.id: n for n in self.nodes}

    def stub(self, step: int, edge: int) -> StubCause | None:
        """Why next edge `edge` of node `step` has no target (recorded with forward=True), else None."""
        return self._stubs_by_edge.get((step, edge))

    @cached_property
    def _stubs_by_edge(self) -> dict[tuple[int, int], StubCause]:
        return {(s.step, s.edge): s for s in self.stubs}

    def edges(self) -> Iterator[tuple[Step, int, Edge, TensorInfo | None]]:
        """Every next edge as (source node, edge index, edge, gradient sent along it)."""
        for n in self.nodes:
            for k, e in enumerate(n.edges):
                yield n, k, e, (n.vjp[k] if k < len(n.vjp) else None)

    @cached_property
    def graph(self) -> networkx.DiGraph:
        """The pass as a networkx DiGraph (seeds → nodes → leaves), recorded data as attributes."""
        return upstairs().graph(self)

    def to_json(self, *, indent: int | None = 1) -> str:
        """Versioned JSON text; tracer.load() gives the trace back."""
        return upstairs().to_json(self, indent=indent)

    def to_dot(self, **options: Any) -> str:
        """The annotated graph as DOT text (no Graphviz needed)."""
        return upstairs().to_dot(self, **options)

    def svg(self, **options: Any) -> str:
        """The annotated graph as SVG text (needs Graphviz's `dot`)."""
        return upstairs().svg(self, **options)

    def save(self, path: Any, **options: Any) -> Any:
        """Write the trace; the format follows the suffix (.svg .png .pdf .dot .json .html)."""
        return upstairs().save(self, path, **options)

    def summary(self) -> str:
        """A compact text report of the pass: what a person reads first."""
        return upstairs().summary(self)

    def __repr__(self) -> str:
        seeds = ", ".join(f"{s.output_name}{list(s.shape)}" for s in self.seeds)
        state = ("" if self.rank is None else f", rank {self.rank}") + ("" if self.complete else ", incomplete")
        return (
            f"<Trace #{self.index} {self.kind} of {seeds}: {len(self.steps)} steps, {len(self.leaves)} leaves{state}>"
        )

    def show(self, *, steps: bool = False, scale: float | None = None, **options: Any) -> Displayable:
        """For notebooks: the annotated picture, or with steps=True the stepper through every step (HTML).

        Takes the drawing options of svg() (direction, theme, detail, jacobian, ...) and `scale` (1 is
        Graphviz's natural size); they are checked now, the drawing happens when the notebook displays it.
        """
        return upstairs().show(self, steps=steps, scale=scale, **options)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return upstairs().mimebundle(self, include=include, exclude=exclude)
