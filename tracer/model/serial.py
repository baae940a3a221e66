"""Versioned JSON for traces: dataclasses to plain JSON and back, checked field by field, never executing code.

The schema is the dataclasses in records.py: their type hints drive both directions (docs/trace-format.md describes
it for readers; tests keep the two in step). Non-finite floats are written as the strings "NaN", "Infinity" and
"-Infinity" so the text is standard JSON (browsers parse it).
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import json
import math
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import numpy as np

from .digest import HEALTH_KINDS, PassDigest
from .errors import TraceFormatError
from .records import NDArray, NoteKind, Step, Trace

FORMAT = "gradtrace.trace"
VERSION = 1
DIGESTS_FORMAT = "gradtrace.digests"  # a block's per-pass digests (tracer/model/digest.py), versioned on their own
DIGESTS_VERSION = 1
_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
MAX_TEXT = 512 * 1024 * 1024  # refuse to parse more than this: a trace file is never that large
MAX_INT = 2**63 - 1  # the largest id, dimension or count a trace can hold (torch's int64)


def to_plain(obj: Any) -> Any:
    """Dataclasses, tuples and mappings to JSON-ready dicts, lists and numbers."""
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, np.ndarray):
        # Full captures hold millions of values: raw little-endian bytes, base64, not a list of numbers.
        data = np.ascontiguousarray(obj, dtype=obj.dtype.newbyteorder("<"))
        return {"dtype": obj.dtype.name, "shape": list(obj.shape), "base64": base64.b64encode(data.tobytes()).decode()}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, tuple | list):
        return [to_plain(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return "NaN" if math.isnan(obj) else ("Infinity" if obj > 0 else "-Infinity")
    return obj


def dumps(trace: Trace, *, indent: int | None = 1) -> str:
    """The trace as JSON text: every string exactly as recorded, so `loads(dumps(t)) == t`.

    Text is written as itself (not as \\u escapes), except lone surrogates (a file name decoded with
    surrogateescape, names={"\\ud800": x}): UTF-8 cannot hold them, so they are written as JSON's \\ud800
    escapes, which load back as the same lone surrogate. The text is then always valid UTF-8. (A high and a low
    surrogate held as two characters of one str are, to JSON, the escape of the one character they pair to, and
    load back as it.)
    """
    plain = to_plain(trace)
    if not plain["stubs"]:  # written only when recorded with forward=True: other files stay as they were
        del plain["stubs"]
    document = {"format": FORMAT, "version": VERSION, "trace": plain}
    return _json_text(document, indent)


def _json_text(document: Any, indent: int | None) -> str:
    text = json.dumps(document, indent=indent, ensure_ascii=False, allow_nan=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # json leaves a lone surrogate raw with ensure_ascii=False (only ever inside a string literal), and
        # UTF-8 cannot hold it: backslashreplace writes it as \\udxxx, JSON's own escape of it.
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _parsed(text: str | bytes, what: str) -> Any:
    """JSON text to Python values, refusing what no gradtrace file holds (bare NaN, huge texts, deep nesting)."""
    if len(text) > MAX_TEXT:
        raise TraceFormatError(f"{what} text is {len(text)} bytes, more than the {MAX_TEXT} a {what} can be")
    if isinstance(text, str) and text.startswith(_BOM):  # a byte-order mark, as json accepts it in bytes
        text = text[1:]
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise TraceFormatError(f"not a gradtrace {what}: the JSON is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, oversized integers
        raise TraceFormatError(f"not a gradtrace {what}: invalid JSON ({exc})") from None


def digests_to_json(digests: Any, *, indent: int | None = 1) -> str:
    """A block's per-pass digests (an iterable of PassDigest) as versioned JSON; digests_from_json reads it back."""
    document = {
        "format": DIGESTS_FORMAT,
        "version": DIGESTS_VERSION,
        "digests": [to_plain(d) for d in digests],
    }
    return _json_text(document, indent)


def digests_from_json(text: str | bytes) -> list[PassDigest]:
    """Parse digests JSON text (from digests_to_json); raises TraceFormatError naming what is wrong and where."""
    document = _parsed(text, "digests")
    if not isinstance(document, dict) or document.get("format") != DIGESTS_FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise TraceFormatError(
            f'not gradtrace digests: expected a JSON object with "format": "{DIGESTS_FORMAT}", found {found!r}'
        )
    version = document.get("version")
    if type(version) is not int or version != DIGESTS_VERSION:
        raise TraceFormatError(
            f"unsupported digests version {version!r}: this gradtrace reads version {DIGESTS_VERSION}; "
            "re-record the run, or use the gradtrace version that wrote the file"
        )
    if set(document) != {"format", "version", "digests"}:
        raise TraceFormatError(
            f'digests: expected the keys "format", "version" and "digests", found {sorted(document)}'
        )
    items = document["digests"]
    if not isinstance(items, list):
        raise _wrong("digests", "a list", items)
    digests = [from_plain(PassDigest, item, f"digests[{i}]") for i, item in enumerate(items)]
    for i, d in enumerate(digests):
        _check_digest(d, f"digests[{i}]")
    return digests


def _check_digest(digest: PassDigest, where: str) -> None:
    unknown = [f for f in digest.flags if f not in HEALTH_KINDS]
    if unknown:
        raise TraceFormatError(f"{where}.flags: {unknown} are not health kinds (those are {list(HEALTH_KINDS)})")
    for k, leaf in enumerate(digest.leaves):
        at = f"{where}.leaves[{k}]"
        if any(d < 0 for d in leaf.shape):
            raise TraceFormatError(f"{at}.shape: dimensions cannot be negative, found {_shape_text(leaf.shape)}")
        if not 0 <= leaf.zeros <= 1:
            raise TraceFormatError(f"{at}.zeros is a share between 0 and 1, found {leaf.zeros!r}")
        if leaf.nan < 0 or leaf.inf < 0:
            raise TraceFormatError(f"{at}: the nan and inf counts cannot be negative")
        for name in ("grad_norm", "grad_max_abs", "value_norm", "update_norm"):
            value = getattr(leaf, name)
            if value is not None and value < 0:  # False for NaN, which a NaN gradient's norm is
                raise TraceFormatError(f"{at}.{name} cannot be negative, found {value!r}")


def loads(text: str | bytes) -> Trace:
    """Parse trace JSON text; raises TraceFormatError naming what is wrong and where."""
    document = _parsed(text, "trace")
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise TraceFormatError(
            f'not a gradtrace trace: expected a JSON object with "format": "{FORMAT}", found {found!r}'
        )
    version = document.get("version")
    if type(version) is not int or version != VERSION:  # true and 1.0 equal 1 in Python, but are not versions
        raise TraceFormatError(
            f"unsupported trace version {version!r}: this gradtrace reads version {VERSION}; "
            "re-record the trace, or use the gradtrace version that wrote it"
        )
    if set(document) - {"format", "version", "trace"}:
        raise TraceFormatError(f"unknown top-level keys: {sorted(set(document) - {'format', 'version', 'trace'})}")
    trace: Trace = from_plain(Trace, document.get("trace"), "trace")
    trace = _with_note_kinds(trace)
    validate(trace)
    return trace


# The wording of each kind of note before Step.note_kind was written (files of that time): frozen, as those
# files are. A note none of them starts keeps note_kind None.
_OLD_NOTE_PREFIXES: tuple[tuple[str, NoteKind], ...] = (
    ("raised ", NoteKind.RAISED),
    ("torch.compile runs the backward of this compiled region", NoteKind.COMPILED),
    ("no Jacobian: ", NoteKind.NO_JACOBIAN),
    ("vᵀJ not checked: ", NoteKind.UNCHECKED),
    ("vᵀJ checked without ", NoteKind.UNCHECKED),
    ("no independent reference", NoteKind.NO_REFERENCE),
    ("the backward disagrees with the forward", NoteKind.DISAGREES),
)


def _with_note_kinds(trace: Trace) -> Trace:
    """A file written before note_kind existed: each note's kind, read once from its wording."""
    if not any(n.note is not None and n.note_kind is None for n in trace.nodes):
        return trace
    return dataclasses.replace(trace, nodes=tuple(_with_note_kind(n) for n in trace.nodes))


def _with_note_kind(step: Step) -> Step:
    if step.note is None or step.note_kind is not None:
        return step
    kind = next((k for prefix, k in _OLD_NOTE_PREFIXES if step.note.startswith(prefix)), None)
    return step if kind is None else dataclasses.replace(step, note_kind=kind)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"bare {name} is not JSON; non-finite numbers are written as strings")


def load(source: str | os.PathLike[str] | bytes) -> Trace:
    """A Trace from a JSON file path or from JSON text."""
    if isinstance(source, bytes):
        return loads(source)
    if isinstance(source, str) and source.lstrip(_BOM + " \t\r\n")[:1] in ("{", "["):
        return loads(source)
    path = Path(source)
    shown = _quoted(str(path))
    try:
        exists = path.exists()
    except OSError as exc:  # e.g. a name longer than the system allows: no such file either way
        raise FileNotFoundError(f"no trace file at {shown} ({exc.strerror or exc})") from None
    if not exists:
        raise FileNotFoundError(f"no trace file at {shown}")
    if path.is_dir():
        raise TraceFormatError(f"{shown} is a folder; give the path of a trace .json file")
    if not path.is_file():  # a device or pipe (/dev/zero) could be read forever
        raise TraceFormatError(f"{shown} is not a regular file; give the path of a trace .json file")
    try:
        size = path.stat().st_size
        if size > MAX_TEXT:
            raise TraceFormatError(f"{shown} is {size} bytes, more than the {MAX_TEXT} a trace can be")
        data = path.read_bytes()
    except OSError as exc:
        raise TraceFormatError(f"cannot read {shown}: {exc.strerror or exc}") from None
    try:
        return loads(data)
    except TraceFormatError as exc:
        raise TraceFormatError(f"{path}: {exc}") from None


_BOM = "\ufeff"


def _quoted(text: str, limit: int = 80) -> str:
    """repr() of a name or path for a message, cut short: hostile input is not echoed back whole."""
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"


def _hints(cls: type) -> dict[str, Any]:
    cached = _HINTS.get(cls)
    if cached is None:
        cached = _HINTS[cls] = get_type_hints(cls)
    return cached


_HINTS: dict[type, dict[str, Any]] = {}


def from_plain(tp: Any, data: Any, path: str) -> Any:
    """Build a value of type `tp` from parsed JSON, checking every field; `path` names where we are."""
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(data, dict):
            raise _wrong(path, f"an object ({tp.__name__})", data)
        fields = {f.name: f for f in dataclasses.fields(tp)}
        unknown = set(data) - set(fields)
        if unknown:
            raise TraceFormatError(f"{path}: unknown field(s) {sorted(unknown)} for {tp.__name__}")
        hints = _hints(tp)
        kwargs = {}
        for name, f in fields.items():
            if name in data:
                kwargs[name] = from_plain(hints[name], data[name], f"{path}.{name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise TraceFormatError(f"{path}: missing field {name!r} of {tp.__name__}")
        return tp(**kwargs)
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if data is None and type(None) in options:
            return None
        errors = []
        # An option of exactly the value's type first: 1 in a float | int | bool field stays the int 1.
        for option in sorted(options, key=lambda o: o is not type(data)):
            if option is type(None):
                continue
            try:
                return from_plain(option, data, path)
            except TraceFormatError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise _wrong(path, " or ".join(_type_name(o) for o in options), data)
    if origin is tuple:
        args = get_args(tp)
        if not isinstance(data, list):
            raise _wrong(path, "a list", data)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_plain(args[0], item, f"{path}[{i}]") for i, item in enumerate(data))
        if len(data) != len(args):
            raise TraceFormatError(f"{path}: expected {len(args)} items, found {len(data)}")
        return tuple(from_plain(a, item, f"{path}[{i}]") for i, (a, item) in enumerate(zip(args, data, strict=True)))
    if origin in (Mapping, dict, typing.Mapping) or tp in (Mapping,):
        _, value_tp = get_args(tp)
        if not isinstance(data, dict):
            raise _wrong(path, "an object", data)
        return types.MappingProxyType({str(k): from_plain(value_tp, v, f"{path}[{k!r}]") for k, v in data.items()})
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        allowed = [member.value for member in tp]
        if not isinstance(data, str) or data not in allowed:
            raise _wrong(path, f"one of {allowed}", data)
        return tp(data)
    if origin is Literal:
        if data not in get_args(tp) or isinstance(data, bool) != any(isinstance(a, bool) for a in get_args(tp)):
            raise TraceFormatError(f"{path}: expected one of {list(get_args(tp))}, found {data!r}")
        return data
    if tp is NDArray:
        return _array(data, path)
    if tp is bool:
        if not isinstance(data, bool):
            raise _wrong(path, "true or false", data)
        return data
    if tp is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise _wrong(path, "a whole number", data)
        if abs(data) > MAX_INT:  # ids, shapes and counts: nothing torch makes is larger
            raise TraceFormatError(f"{path}: whole number out of range ({len(str(abs(data)))} digits)")
        return data
    if tp is float:
        if isinstance(data, str) and data in _NONFINITE:
            return _NONFINITE[data]
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise _wrong(path, "a number", data)
        try:
            return float(data)
        except OverflowError:  # an integer beyond float's range
            raise TraceFormatError(f"{path}: number out of range ({len(str(abs(data)))} digits)") from None
    if tp is str:
        if not isinstance(data, str):
            raise _wrong(path, "a string", data)
        return data
    raise TraceFormatError(f"{path}: cannot read a value of type {tp!r}")  # pragma: no cover - schema bug


_ARRAY_DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool")


def _array(data: Any, path: str) -> NDArray:
    if not isinstance(data, dict) or set(data) != {"dtype", "shape", "base64"}:
        raise _wrong(path, 'an object with "dtype", "shape" and "base64"', data)
    dtype, shape = data["dtype"], data["shape"]
    if dtype not in _ARRAY_DTYPES:
        raise TraceFormatError(f"{path}.dtype: expected one of {list(_ARRAY_DTYPES)}, found {dtype!r}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise _wrong(path + ".shape", "a list of whole numbers >= 0", shape)
    try:
        raw = base64.b64decode(data["base64"], validate=True)
    except (ValueError, TypeError):
        raise TraceFormatError(f"{path}.base64: not valid base64") from None
    item = np.dtype(dtype).newbyteorder("<")
    if len(raw) != math.prod(shape) * item.itemsize:
        raise TraceFormatError(f"{path}: {len(raw)} bytes for shape {shape} of {dtype}")
    array = np.frombuffer(raw, dtype=item).reshape(shape)
    return array


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp)


def _wrong(path: str, expected: str, found: Any) -> TraceFormatError:
    shown = repr(found)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return TraceFormatError(f"{path}: expected {expected}, found {type(found).__name__} {shown}")


def validate(trace: Trace) -> None:
    """Consistency a well-formed trace always has: ids, edge targets, shapes matching values."""
    ids = [n.id for n in trace.nodes]
    if ids != list(range(1, len(ids) + 1)):
        raise TraceFormatError("trace.nodes: node ids must be 1, 2, 3, ... in order")
    executed = [n.executed for n in trace.nodes]
    if executed != sorted(executed, reverse=True):
        raise TraceFormatError("trace.nodes: executed nodes must come first, in step order")
    known = set(ids)
    for n in trace.nodes:
        where = f"trace.nodes[{n.id - 1}]"
        for k, e in enumerate(n.edges):
            if e.target is not None and e.target not in known:
                raise TraceFormatError(f"{where}.edges[{k}]: target {e.target} is not a node of this trace")
        for label, group in (("v", n.v), ("vjp", n.vjp)):
            for k, t in enumerate(group):
                _check_tensor(t, f"{where}.{label}[{k}]")
        if len(n.vjp) > len(n.edges):
            raise TraceFormatError(f"{where}.vjp: {len(n.vjp)} entries for {len(n.edges)} edges")
        _check_jacobian(n, where)
    for s in trace.seeds:
        if s.target is not None and s.target not in known:
            raise TraceFormatError(f"trace.seeds[{s.index}].target: {s.target} is not a node of this trace")
        _check_tensor(s.v, f"trace.seeds[{s.index}].v")
    for name, leaf in trace.leaves.items():
        if leaf.name != name:
            raise TraceFormatError(f"trace.leaves[{name!r}]: its name field says {leaf.name!r}")
        if leaf.node is not None and leaf.node not in known:
            raise TraceFormatError(f"trace.leaves[{name!r}].node: {leaf.node} is not a node of this trace")
        for label in ("grad", "grad_before", "grad_total", "value"):
            t = getattr(leaf, label)
            _check_tensor(t, f"trace.leaves[{name!r}].{label}")
            if t is not None and t.shape != leaf.shape:
                raise TraceFormatError(
                    f"trace.leaves[{name!r}].{label}: shape {_shape_text(t.shape)}, but the leaf's shape is "
                    f"{_shape_text(leaf.shape)} (a gradient, like the value, has its tensor's shape)"
                )

    _check_acyclic(trace)
    _check_flow_shapes(trace)


def _check_flow_shapes(trace: Trace) -> None:
    """Every gradient arriving at one input slot (along edges, as a seed) has that slot's shape: the engine sums
    them there, after summing broadcast gradients down to the input's shape. A leaf's slot has its shape."""
    expected: dict[tuple[int, int], tuple[tuple[int, ...], str]] = {}
    for n in trace.nodes:
        if n.executed:
            for nr, t in enumerate(n.v):
                if t is not None:
                    expected[(n.id, nr)] = (t.shape, f"node {n.id}'s input {nr}")
    for name, leaf in trace.leaves.items():
        if leaf.node is not None:
            expected.setdefault((leaf.node, leaf.input_nr), (leaf.shape, f"leaf {_quoted(name)}"))
    arrivals = [
        (f"trace.nodes[{n.id - 1}].edges[{k}]", e.target, e.input_nr, n.vjp[k] if k < len(n.vjp) else None)
        for n in trace.nodes
        if n.executed
        for k, e in enumerate(n.edges)
    ]
    arrivals += [(f"trace.seeds[{s.index}]", s.target, s.input_nr, s.v) for s in trace.seeds]
    for where, target, nr, grad in arrivals:
        if target is None:
            continue
        node = trace.node(target)
        if node.executed and not 0 <= nr < max(len(node.v), 1):
            raise TraceFormatError(f"{where}: input_nr {nr}, but node {node.id} has {len(node.v)} input(s)")
        if grad is None:
            continue
        shape, what = expected.setdefault((target, nr), (grad.shape, where))
        if grad.shape != shape:
            raise TraceFormatError(
                f"{where}: sends a {_shape_text(grad.shape)} gradient to node {target}, but {what} is "
                f"{_shape_text(shape)}"
            )


def _check_acyclic(trace: Trace) -> None:
    """A backward graph has no cycles (the analysis sorts it topologically): Kahn's algorithm, no recursion."""
    targets = {n.id: [e.target for e in n.edges if e.target is not None] for n in trace.nodes}
    incoming = dict.fromkeys(targets, 0)
    for ts in targets.values():
        for t in ts:
            incoming[t] += 1
    ready = [i for i, count in incoming.items() if count == 0]
    seen = 0
    while ready:
        i = ready.pop()
        seen += 1
        for t in targets[i]:
            incoming[t] -= 1
            if incoming[t] == 0:
                ready.append(t)
    if seen < len(targets):
        stuck = sorted(i for i, count in incoming.items() if count > 0)
        shown = ", ".join(map(str, stuck[:8])) + (", ..." if len(stuck) > 8 else "")
        raise TraceFormatError(
            f"trace.nodes: the edges form a cycle (nodes {shown} are on it or after it); a backward graph has none"
        )


def _check_tensor(t: Any, where: str) -> None:
    if t is None:
        return
    if any(d < 0 for d in t.shape):
        raise TraceFormatError(f"{where}.shape: dimensions cannot be negative, found {_shape_text(t.shape)}")
    numel = _numel(t.shape)
    if numel is None:
        raise TraceFormatError(f"{where}.shape: {len(t.shape)} dimensions hold more elements than a tensor can")
    if t.values is not None and len(t.values) != numel:
        raise TraceFormatError(
            f"{where}.values: {len(t.values)} values for shape {_shape_text(t.shape)} ({numel} elements)"
        )
    if t.stats is not None:
        _check_stats(t.stats, f"{where}.stats")


def _check_stats(stats: Any, where: str) -> None:
    """What statistics of real numbers always satisfy (the renderer takes logarithms of norms, for one)."""
    if stats.norm < 0:  # False for NaN, which a NaN gradient has
        raise TraceFormatError(f"{where}.norm cannot be negative, found {stats.norm!r}")
    if not 0 <= stats.zeros <= 1:
        raise TraceFormatError(f"{where}.zeros is a share between 0 and 1, found {stats.zeros!r}")
    if stats.nan < 0 or stats.inf < 0 or (stats.sampled is not None and stats.sampled < 1):
        raise TraceFormatError(f"{where}: counts cannot be negative (nan, inf) or below 1 (sampled)")


def _numel(shape: tuple[int, ...]) -> int | None:
    """The number of elements, or None when it exceeds what a tensor can hold (stops early: no huge products)."""
    n = 1
    for d in shape:
        n *= d
        if n > MAX_INT:
            return None
    return n


def _shape_text(shape: tuple[int, ...]) -> str:
    if len(shape) <= 8:
        return str(list(shape))
    return f"[{', '.join(map(str, shape[:4]))}, ... ({len(shape)} dimensions)]"


def _check_jacobian(step: Any, where: str) -> None:
    """The matrix has one row per element of the outputs that got a gradient, one column per element sent."""
    jac = step.jacobian
    if jac is None:
        return
    sizes = []
    for label, shapes in (("rows", jac.rows), ("cols", jac.cols)):
        total = 0
        for k, shape in enumerate(shapes):
            numel = None if shape is None else _numel(shape)
            if shape is not None and (numel is None or any(d < 0 for d in shape)):
                raise TraceFormatError(f"{where}.jacobian.{label}[{k}]: not a valid shape")
            total += numel or 0
        sizes.append(total)
    n_rows, n_cols = sizes
    if len(jac.matrix) != n_rows or any(len(row) != n_cols for row in jac.matrix):
        raise TraceFormatError(
            f"{where}.jacobian.matrix: expected {n_rows} rows of {n_cols} numbers for its rows and cols shapes"
        )
