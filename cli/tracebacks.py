"""Show the user's exception as Python would, with gradtrace's own frames (cli/, tracer/) taken out."""

from __future__ import annotations

import os
import sys
import traceback
from types import TracebackType

import tracer
from tracer.record.explain import add_explanation

# Frames from these folders are ours: the user never wrote them, so their traceback must not show them.
_OWN_DIRS = tuple(
    os.path.dirname(os.path.abspath(path)) + os.sep for path in (__file__, tracer.__file__) if path is not None
)


def is_ours(filename: str) -> bool:
    """Whether a frame's file belongs to gradtrace (or to runpy, which only launched the user's code)."""
    path = os.path.abspath(filename)
    return path.startswith(_OWN_DIRS) or os.path.basename(path) == "runpy.py"


def without_our_frames(tb: TracebackType | None) -> TracebackType | None:
    """The same traceback chain minus the frames that belong to gradtrace."""
    kept: list[TracebackType] = []
    while tb is not None:
        if not is_ours(tb.tb_frame.f_code.co_filename):
            kept.append(tb)
        tb = tb.tb_next
    rebuilt: TracebackType | None = None
    for entry in reversed(kept):
        rebuilt = TracebackType(rebuilt, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
    return rebuilt


def strip_exception(exc: BaseException) -> None:
    """Take our frames out of `exc` and of every exception chained to it (cause, context, groups)."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        current.__traceback__ = without_our_frames(current.__traceback__)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        nested = getattr(current, "exceptions", ())  # an ExceptionGroup's members
        if isinstance(nested, tuple):
            pending.extend(e for e in nested if isinstance(e, BaseException))


def show_user_exception(exc: BaseException) -> None:
    """Print the exception as `python SCRIPT.py` would: through sys.excepthook, plus gradtrace's explanation."""
    add_explanation(exc)  # a known torch error gets its plain-words fix as a note (printed with the traceback)
    strip_exception(exc)
    sys.stderr.flush()
    if sys.excepthook is sys.__excepthook__:
        # The built-in hook reads source lines from disk; the traceback module also finds notebook cells,
        # which live only in linecache. The output is the same.
        traceback.print_exception(exc, file=sys.stderr)
    else:  # the script installed its own hook (rich, IPython's ultratb, ...): honour it, as python would
        sys.excepthook(type(exc), exc, exc.__traceback__)
    sys.stderr.flush()
