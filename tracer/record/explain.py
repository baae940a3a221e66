"""Plain-words explanations added to torch's backward errors: what went wrong and the call that works."""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Sequence
from typing import Any

EXPLANATION_MARK = "gradtrace:"  # every note we add starts with this, so it is added once only

_SHAPE_MISMATCH = re.compile(
    r"Mismatch in shape: grad_output\[(\d+)\] has a shape of torch\.Size\(\[([\d, ]*)\]\) "
    r"and output\[\d+\] has a shape of torch\.Size\(\[([\d, ]*)\]\)"
)


def _shape(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(",") if p.strip())


def _broadcastable(small: tuple[int, ...], big: tuple[int, ...]) -> bool:
    """Whether `small` broadcasts to `big` (numpy rules, as the old torch did for seeds)."""
    if len(small) > len(big):
        return False
    return all(s in (1, b) for s, b in zip(reversed(small), reversed(big), strict=False))


def explain(exc: BaseException, outputs: Sequence[Any] = (), gradients: Sequence[Any] = ()) -> str | None:
    """A plain-words explanation and fix for a known backward error, or None."""
    message = str(exc)
    if "grad can be implicitly created only for scalar outputs" in message:
        shape = next((list(o.shape) for o in outputs if getattr(o, "numel", lambda: 1)() != 1), None)
        where = f"The output has shape {shape}" if shape is not None else "The output is not a scalar"
        return (
            f"{EXPLANATION_MARK} {where}, so backward needs a seed v of that same shape: it computes the "
            "vector-Jacobian product vᵀJ, and v holds one weight per output element. Only a one-element "
            "output gets v = 1 automatically. Use y.backward(gradient=torch.ones_like(y)) to add up the "
            "gradients of all elements (the same result as y.sum().backward()), or a one-hot v "
            "(zeros with a single 1) for the gradient of one element."
        )
    match = _SHAPE_MISMATCH.search(message)
    if match:
        index, seed, out = int(match.group(1)), _shape(match.group(2)), _shape(match.group(3))
        return _explain_shape_mismatch(index, seed, out, gradients)
    if "does not require grad and does not have a grad_fn" in message:
        return (
            f"{EXPLANATION_MARK} the output was computed only from tensors that do not require grad (or under "
            "torch.no_grad(), or from a .detach()ed tensor), so there is no graph to go back through. Create "
            "the input with requires_grad=True (torch.tensor(..., requires_grad=True) or x.requires_grad_()) "
            "before computing the output."
        )
    if "backward through the graph a second time" in message:
        return (
            f"{EXPLANATION_MARK} the first backward freed the tensors the graph saved for it. To run several "
            "passes over one graph (say one-hot seeds, one per output element, to build a Jacobian row by "
            "row) pass retain_graph=True to every backward except the last, or let tracer.jacobian(y, x) do it."
        )
    if "appears to not have been used in the graph" in message:
        return (
            f"{EXPLANATION_MARK} one of the inputs you asked gradients for is not on any path from the outputs, "
            "so its gradient would be None. Pass allow_unused=True to get None for it (or "
            "materialize_grads=True for zeros), or check that the output really depends on it."
        )
    if "modified by an inplace operation" in message:
        return (
            f"{EXPLANATION_MARK} a tensor that backward needs was changed in place after it was saved. Use the "
            "out-of-place form of that operation (x = x + 1 rather than x += 1) or .clone() before changing it; "
            "torch.autograd.set_detect_anomaly(True) shows the forward line that saved it."
        )
    return None


def _explain_shape_mismatch(index: int, seed: tuple[int, ...], out: tuple[int, ...], gradients: Sequence[Any]) -> str:
    head = (
        f"{EXPLANATION_MARK} the seed v for output {index} has shape {list(seed)} but the output has shape "
        f"{list(out)}; v must have exactly the output's shape (one weight per output element)."
    )
    given = gradients[index] if index < len(gradients) else None
    if _broadcastable(seed, out):
        old = (
            f"Older PyTorch broadcast a {list(seed)} seed over the {list(out)} output; today write it out: "
            "gradient=g.expand_as(y)"
        )
        if given is not None and given.numel() == 1:
            old += f" (here: torch.full({list(out)}, {_num(given.reshape(-1)[0].item())}))"
        return f"{head} {old}, or gradient=torch.ones_like(y) to add up all elements' gradients."
    if _broadcastable(out, seed):
        old = (
            f"Older PyTorch accepted a {list(seed)} seed for a {list(out)} output and effectively summed it "
            "down to the output's shape, g.sum_to_size(y.shape)"
        )
        if given is not None:
            summed = given.detach().sum_to_size(out)
            if summed.numel() <= 8:
                old += f" (here: {_values(summed.tolist())})"
        return f"{head} {old}; to get that result today pass gradient=g.sum_to_size(y.shape)."
    if math.prod(seed) == math.prod(out):
        return f"{head} It has the right number of elements: gradient=g.reshape(y.shape) fixes the shape."
    return f"{head} Build it with the output's shape, e.g. gradient=torch.ones_like(y)."


def _num(x: float) -> str:
    return repr(float(x))


def _values(x: Any) -> str:
    return repr(x).replace(" ", "")


def add_explanation(exc: BaseException, outputs: Sequence[Any] = (), gradients: Sequence[Any] = ()) -> None:
    """Attach the explanation to torch's exception as a note: same type, torch's message first."""
    notes = getattr(exc, "__notes__", [])
    if any(str(n).startswith(EXPLANATION_MARK) for n in notes):
        return
    text = explain(exc, outputs, gradients)
    if text is not None:
        attach_note(exc, text)


def attach_note(exc: BaseException, text: str, *, notes_supported: bool = sys.version_info >= (3, 11)) -> None:
    """Add `text` as an exception note (PEP 678); on Python 3.10, which has none, after torch's message."""
    if notes_supported and sys.version_info >= (3, 11):
        exc.add_note(text)
        return
    # 3.10's traceback prints no notes, so the explanation goes into the message, torch's words still first;
    # __notes__ is kept too so that the explanation is added once only.
    setattr(exc, "__notes__", [*getattr(exc, "__notes__", []), text])  # noqa: B010 (no such attribute before 3.11)
    if exc.args and isinstance(exc.args[0], str):
        exc.args = (f"{exc.args[0]}\n\n{text}", *exc.args[1:])
