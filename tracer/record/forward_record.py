"""The opt-in forward record: a TorchFunctionMode that notes every torch call (ops, tensor serials, versions,
requires_grad, grad_fn names, the user's line) and keeps no tensor alive (weak references only).

It changes nothing: each call runs exactly as without it (same arguments, same result object, same exception),
the mode sits on torch's own mode stack so the user's modes keep working inside and around it, and any failure
of our bookkeeping drops that call's note, never the call.
"""

from __future__ import annotations

import functools
import itertools
import os
import sys
import weakref
from collections.abc import Callable
from types import FrameType
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from ..model.forward_events import ForwardOp, ForwardRecord, OpKind, TensorSeen

_OWN_DIRS = (
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep,  # tracer/
    os.path.dirname(os.path.abspath(torch.__file__)) + os.sep,
)
_VALUES_OUT = frozenset(
    {"item", "tolist", "numpy", "__float__", "__int__", "__bool__", "__index__", "__complex__", "__array__"}
)
_FROM_VALUES = frozenset({"tensor", "as_tensor", "asarray", "new_tensor", "scalar_tensor", "full"})
# Reading these tensor attributes is autograd's bookkeeping, not a step of the computation: `p.grad` in an
# optimizer step is no data flow from p. Not noted.
_BOOKKEEPING = frozenset({"grad", "_grad", "grad_fn", "_grad_fn", "_base"})
_SKIP = object()
_ESCAPED_KEPT = 1024  # the most recent values that left torch, watched for coming back
_DATA = torch._C.TensorBase.__dict__["data"]  # .data reaches the mode as this getset descriptor's __get__
_BACKWARD_CALLS = {torch.Tensor.backward: "backward", torch.autograd.backward: "backward", torch.autograd.grad: "grad"}


@functools.lru_cache(maxsize=1024)
def _is_users(filename: str) -> bool:
    return not os.path.abspath(filename).startswith(_OWN_DIRS) and not filename.startswith("<frozen")


def _user_frame(frame: FrameType | None) -> FrameType | None:
    while frame is not None:
        if _is_users(frame.f_code.co_filename):
            return frame
        frame = frame.f_back
    return None


def _variable(frame: FrameType | None, tensors: list[torch.Tensor]) -> str | None:
    """The user's local variable holding the first tensor (read for backward calls only: they are few)."""
    if frame is None or not tensors:
        return None
    return next((k for k, v in frame.f_locals.items() if v is tensors[0] and not k.startswith("_")), None)


def _tensors(
    value: Any, out: list[torch.Tensor], others: list[Any] | None = None, depth: int = 0
) -> list[torch.Tensor]:
    """The tensors in a call's arguments or result (inside lists, tuples and dicts, a few levels deep); the other
    values go to `others` when given."""
    if isinstance(value, torch.Tensor):
        out.append(value)
        return out
    if others is not None:
        others.append(value)
    if depth < 4 and isinstance(value, list | tuple):
        for item in value:
            _tensors(item, out, others, depth + 1)
    elif depth < 4 and isinstance(value, dict):
        for item in value.values():
            _tensors(item, out, others, depth + 1)
    return out


def _version(t: torch.Tensor) -> int:
    """The version counter; inference tensors have none (and cannot be changed in place outside inference)."""
    try:
        return t._version
    except RuntimeError:
        return 0


# A tensor as one call saw it, as noted while recording: (serial, version, requires_grad, grad_fn name, dtype,
# shape, made_by); the TensorSeen record is built from it when the record is read.
_Seen = tuple[int, int, bool, str | None, str, tuple[int, ...], tuple[int, int] | None]


def _record(seen: _Seen) -> TensorSeen:
    serial, version, requires_grad, grad_fn, dtype, shape, made_by = seen
    return TensorSeen(
        serial=serial,
        version=version,
        requires_grad=requires_grad,
        grad_fn=grad_fn,
        dtype=dtype,
        shape=shape,
        made_by=made_by,
    )


@functools.lru_cache(maxsize=64)
def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _backward_retains(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether a backward call keeps its graph (retain_graph, which defaults to create_graph)."""
    # Tensor.backward(self, gradient, retain_graph, create_graph); backward/grad(tensors, grads, retain, create)
    retain = kwargs.get("retain_graph", args[2] if len(args) > 2 else None)
    create = kwargs.get("create_graph", args[3] if len(args) > 3 else False)
    return bool(create if retain is None else retain)


class _Mode(TorchFunctionMode):
    """Sees every torch call of its thread while pushed; hands each to the ForwardRecorder."""

    def __init__(self, owner: ForwardRecorder) -> None:
        super().__init__()
        self.owner = owner

    def __torch_function__(
        self, func: Callable[..., Any], types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        kwargs = kwargs or {}
        if torch.compiler.is_compiling():  # torch.compile traces through modes: it sees a plain call, unnoted
            return func(*args, **kwargs)
        # Our reading of the tensors (t.grad_fn, t.requires_grad) must reach no mode or subclass: a user's mode
        # below ours would see calls the user's code never made.
        with torch._C.DisableTorchFunction():
            before = self.owner.before(func, args, kwargs)
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            with torch._C.DisableTorchFunction():
                self.owner.after(before, None, exc)
            raise
        with torch._C.DisableTorchFunction():
            self.owner.after(before, result, None)
        return result


class ForwardRecorder:
    """Notes the torch calls of the thread that opens it: `with ForwardRecorder() as fwd: ...; fwd.record`."""

    def __init__(self) -> None:
        self._raw: list[dict[str, Any]] = []  # each call's fields, tensors as _Seen tuples
        self._ops: list[ForwardOp] = []  # the first len(_ops) of _raw as records
        self._dropped = 0
        self._serials: dict[int, tuple[weakref.ref[torch.Tensor], int]] = {}  # id -> (weak ref, serial)
        self._counter = itertools.count(1)
        self._made_by: dict[int, tuple[int, int]] = {}  # serial -> (op index, output position)
        # what .item() / .tolist() / .numpy() returned, to see it come back: id -> (op index, the value or a weak
        # reference to it: an ndarray shares the tensor's memory and must not keep it alive)
        self._escaped: dict[int, tuple[int, Any]] = {}
        self._mode: _Mode | None = None
        # the call that made each backward node, for the picture's "no grad" stubs: (node type, sequence number) ->
        # op index. Python's wrapper of a node comes and goes (its id is no name for it); its sequence number stays
        self._nodes: dict[tuple[str, int], int] = {}

    def __enter__(self) -> ForwardRecorder:
        self._mode = _Mode(self)
        self._mode.__enter__()  # type: ignore[no-untyped-call]
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._mode is not None:
            self._mode.__exit__(*exc_info)  # type: ignore[no-untyped-call]
            self._mode = None

    @property
    def record(self) -> ForwardRecord:
        """What was seen so far, as plain records (built here: a call pays only for noting plain tuples)."""
        for raw in self._raw[len(self._ops) :]:
            self._ops.append(
                ForwardOp(
                    **{key: value for key, value in raw.items() if key not in ("inputs", "outputs")},
                    inputs=tuple(_record(s) for s in raw["inputs"]),
                    outputs=tuple(_record(s) for s in raw["outputs"]),
                )
            )
        return ForwardRecord(ops=tuple(self._ops), dropped=self._dropped)

    def serial_of(self, tensor: torch.Tensor) -> int | None:
        """The serial the record gave this tensor object; None when no call saw it."""
        entry = self._serials.get(id(tensor))
        return entry[1] if entry is not None and entry[0]() is tensor else None

    def op_of(self, fn: Any) -> int | None:
        """The index of the call whose result has this backward node as grad_fn; None when no call noted made it."""
        try:
            return self._nodes.get((type(fn).__name__, fn._sequence_nr()))
        except (AttributeError, RuntimeError):  # not a node of autograd's (a compiled region's, a stand-in)
            return None

    # ------------------------------------------------------------------ per call

    def before(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """What must be read before the call runs: its inputs' state and the user's line. Never raises."""
        try:
            if getattr(getattr(func, "__self__", None), "__name__", None) in _BOOKKEEPING:
                return _SKIP
            others: list[Any] | None = [] if self._escaped else None
            tensors = _tensors(kwargs, _tensors(args, [], others), others)
            values_from = self._values_from(others or [])
            inputs = [self._seen(t, with_producer=True) for t in tensors]
            frame = _user_frame(sys._getframe(2))
            file, line = (None, None) if frame is None else (frame.f_code.co_filename, frame.f_lineno)
            name = _variable(frame, tensors) if getattr(func, "__wrapped__", func) in _BACKWARD_CALLS else None
            return (func, args, kwargs, tensors, inputs, file, line, torch.is_grad_enabled(), name, values_from)
        except Exception:
            return None

    def after(self, before: Any, result: Any, error: BaseException | None) -> None:
        """Note the finished call. Never raises: a failure here drops the note, not the user's call."""
        try:
            if before is _SKIP:
                return
            if before is None:
                raise ValueError("nothing was read before the call")
            self._note(before, result, error)
        except Exception:
            self._dropped += 1

    def _note(self, before: Any, result: Any, error: BaseException | None) -> None:
        func, args, kwargs, tensors, inputs, file, line, grad_enabled, output_name, values_from = before
        name, kind = self._name_and_kind(func, args)
        changed = [(t, seen) for t, seen in zip(tensors, inputs, strict=True) if _version(t) != seen[1]]
        bumped = tuple((seen[0], seen[1], _version(t)) for t, seen in changed)
        index = len(self._raw)
        if kind is OpKind.VALUES and error is None:
            self._keep_escaped(result, index)
        outputs: list[_Seen] = []
        written = _tensors(result, []) if error is None else []
        # an in-place change (x[0] = 1 returns None): the changed tensor is an output of this call too
        written += [t for t, _ in changed]
        for t in written:
            seen = self._seen(t, with_producer=False)
            if any(o[0] == seen[0] for o in outputs):
                continue
            self._made_by[seen[0]] = (index, len(outputs))
            fn = t.grad_fn
            if fn is not None:  # the first call to return a node made it (x.contiguous() may hand x back)
                self._nodes.setdefault((type(fn).__name__, fn._sequence_nr()), index)
            outputs.append(seen)
        self._raw.append(
            {
                "index": index,
                "op": name,
                "kind": kind,
                "inputs": inputs,
                "outputs": outputs,
                "grad_enabled": grad_enabled,
                "inference": torch.is_inference_mode_enabled(),
                "file": file,
                "line": line,
                "bumped": bumped,
                "retain_graph": _backward_retains(name, args, kwargs) if kind is OpKind.BACKWARD else None,
                "output_name": output_name,
                "values_from": values_from,
                "raised": None if error is None else f"{type(error).__name__}: {error}".split("\n")[0],
            }
        )

    def _keep_escaped(self, value: Any, index: int) -> None:
        for item in [value, *(value[:64] if isinstance(value, list) else ())]:  # .tolist(): its first level too
            if isinstance(item, bool) or (isinstance(item, int) and -5 <= item <= 256):
                continue  # Python shares these objects: seeing one again says nothing about where it came from
            try:
                self._escaped[id(item)] = (index, weakref.ref(item))
            except TypeError:  # numbers and lists cannot be referred to weakly; they hold no tensor memory
                self._escaped[id(item)] = (index, item)
        while len(self._escaped) > _ESCAPED_KEPT:  # a training loop logging loss.item() every step
            del self._escaped[next(iter(self._escaped))]

    def _values_from(self, others: list[Any]) -> tuple[int, ...]:
        found = set()
        for value in others:
            entry = self._escaped.get(id(value))
            if entry is None:
                continue
            held = entry[1]() if isinstance(entry[1], weakref.ref) else entry[1]
            if held is value:
                found.add(entry[0])
        return tuple(sorted(found))

    @staticmethod
    def _name_and_kind(func: Callable[..., Any], args: tuple[Any, ...]) -> tuple[str, OpKind]:
        if getattr(func, "__self__", None) is _DATA:
            return "data", OpKind.DATA
        # record() wraps torch.autograd.backward/grad to explain errors: the wrapper stands for torch's function
        backward = _BACKWARD_CALLS.get(getattr(func, "__wrapped__", func))
        if backward is not None:
            return backward, OpKind.BACKWARD
        name = getattr(func, "__name__", type(func).__name__)
        if name in ("detach", "detach_"):
            return name, OpKind.DETACH
        if name in _VALUES_OUT:
            return name, OpKind.VALUES
        if name in _FROM_VALUES:
            return name, OpKind.FROM_VALUES
        if name == "requires_grad_":
            return name, OpKind.REQUIRES_GRAD
        if name == "__get__":  # another tensor property (.grad_fn, .T, .grad): named after it
            return str(getattr(getattr(func, "__self__", None), "__name__", name)), OpKind.CALL
        return name, OpKind.CALL

    def _seen(self, t: torch.Tensor, *, with_producer: bool) -> _Seen:
        serial = self._serial(t)
        grad_fn = t.grad_fn
        return (
            serial,
            _version(t),
            t.requires_grad,
            None if grad_fn is None else type(grad_fn).__name__,
            _dtype_name(t.dtype),
            tuple(t.shape),
            self._made_by.get(serial) if with_producer else None,
        )

    def _serial(self, t: torch.Tensor) -> int:
        key = id(t)
        entry = self._serials.get(key)
        if entry is not None and entry[0]() is t:
            return entry[1]
        serial = next(self._counter)  # a new object (also one that reuses a dead tensor's id)
        self._serials[key] = (weakref.ref(t), serial)
        return serial
