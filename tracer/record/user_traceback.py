"""The user's exception as they would see it from `python SCRIPT.py`: gradtrace's own frames taken out."""

from __future__ import annotations

import os
from collections.abc import Sequence
from types import TracebackType

# Frames from this folder are ours (tracer/, with the script runner and the recorder's hooks): the user never
# wrote them, so their traceback does not show them. Callers add their own folders (the CLI's).
TRACER_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def is_ours(filename: str, also: Sequence[str] = ()) -> bool:
    """Whether a frame's file belongs to gradtrace (tracer/ or a folder in `also`), or to runpy, which only
    launched the user's code."""
    path = os.path.abspath(filename)
    own = (TRACER_DIR, *(os.path.abspath(d).rstrip(os.sep) + os.sep for d in also))
    return path.startswith(own) or os.path.basename(path) == "runpy.py"


def without_our_frames(tb: TracebackType | None, also: Sequence[str] = ()) -> TracebackType | None:
    """The same traceback chain minus the frames that belong to gradtrace."""
    kept: list[TracebackType] = []
    while tb is not None:
        if not is_ours(tb.tb_frame.f_code.co_filename, also):
            kept.append(tb)
        tb = tb.tb_next
    rebuilt: TracebackType | None = None
    for entry in reversed(kept):
        rebuilt = TracebackType(rebuilt, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
    return rebuilt


def strip_exception(exc: BaseException, also: Sequence[str] = ()) -> None:
    """Take our frames out of `exc` and of every exception chained to it (cause, context, groups)."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        current.__traceback__ = without_our_frames(current.__traceback__, also)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        nested = getattr(current, "exceptions", ())  # an ExceptionGroup's members
        if isinstance(nested, tuple):
            pending.extend(e for e in nested if isinstance(e, BaseException))
