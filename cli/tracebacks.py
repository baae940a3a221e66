"""Show the user's exception as Python would, with gradtrace's own frames (cli/, tracer/) taken out."""

from __future__ import annotations

import os
import sys
import traceback

from tracer.record.explain import add_explanation
from tracer.record.user_traceback import strip_exception

CLI_DIR = os.path.dirname(os.path.abspath(__file__))  # our frames too (the notebook runner's), besides tracer/'s


def show_user_exception(exc: BaseException) -> None:
    """Print the exception as `python SCRIPT.py` would: through sys.excepthook, plus gradtrace's explanation."""
    add_explanation(exc)  # a known torch error gets its plain-words fix as a note (printed with the traceback)
    strip_exception(exc, also=(CLI_DIR,))
    sys.stderr.flush()
    if sys.excepthook is sys.__excepthook__:
        # The built-in hook reads source lines from disk; the traceback module also finds notebook cells,
        # which live only in linecache. The output is the same.
        traceback.print_exception(exc, file=sys.stderr)
    else:  # the script installed its own hook (rich, IPython's ultratb, ...): honour it, as python would
        sys.excepthook(type(exc), exc, exc.__traceback__)
    sys.stderr.flush()
