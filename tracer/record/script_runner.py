"""Run a user's Python script in this process exactly as `python SCRIPT.py ARGS` would, and say how it ended.

Used by `gradtrace run` / `gradtrace analyze` (inside tracer.record()) and by the gallery builder: the script is
`__main__`, its folder is first on sys.path, sys.argv is its own, and everything is restored afterwards.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import importlib.machinery
import os
import sys
import types
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

INTERRUPTED = 130  # what a shell reports for a program stopped by Ctrl-C (128 + SIGINT)


@dataclass(frozen=True)
class Outcome:
    """How the user's code ended: its exit code, the exception that ended it (None after success or sys.exit),
    and the script's global namespace as it was left (empty when unknown)."""

    exit_code: int
    error: BaseException | None = None
    namespace: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


def exit_code_of(code: object) -> int:
    """The process exit code Python gives `sys.exit(code)`; a message (not a number) is printed, code 1."""
    if code is None:
        return 0
    if isinstance(code, int):  # the OS keeps the low byte: sys.exit(-1) is 255, sys.exit(256) is 0
        return code % 256
    print(code, file=sys.stderr)
    return 1


def ended_by(exc: BaseException) -> Outcome:
    """The outcome for an exception escaping the user's code: SystemExit gives its code, anything else fails."""
    if isinstance(exc, SystemExit):
        return Outcome(exit_code_of(exc.code))
    if isinstance(exc, KeyboardInterrupt):
        return Outcome(INTERRUPTED, exc)
    return Outcome(1, exc)


def main_module(filename: str, loader: object = None) -> types.ModuleType:
    """A fresh `__main__` module, as the interpreter makes for the program it runs."""
    module = types.ModuleType("__main__")
    module.__file__ = filename
    module.__builtins__ = builtins  # type: ignore[attr-defined]
    module.__cached__ = None  # type: ignore[attr-defined]
    module.__loader__ = loader  # type: ignore[assignment]
    module.__spec__ = None
    return module


def _within(name: str, packages: Sequence[str]) -> bool:
    return any(name == p or name.startswith(f"{p}.") for p in packages)


@contextmanager
def before_os_exit(hook: Callable[[int], None] | None) -> Iterator[None]:
    """While the block runs, `os._exit(code)` called in this process first calls `hook(code)`, then exits as
    before (same code, no other cleanup). os._exit skips everything Python would run at exit, so this is the one
    chance to finish what was recorded. A forked child (multiprocessing) calling os._exit is not this process:
    it exits at once. Exceptions from the hook are swallowed: the program's exit is never changed."""
    if hook is None:
        yield
        return
    real = os._exit
    me = os.getpid()

    @functools.wraps(real)
    def _exit(code: int) -> NoReturn:
        if os.getpid() == me:
            with contextlib.suppress(BaseException):
                hook(code)
        real(code)

    os._exit = _exit  # type: ignore[assignment]
    try:
        yield
    finally:
        if os._exit is _exit:  # the program may have replaced it in turn: leave theirs
            os._exit = real


@contextmanager
def running_as_main(
    module: types.ModuleType,
    argv: Sequence[str],
    directory: str,
    *,
    hidden: Sequence[str] = (),
    on_os_exit: Callable[[int], None] | None = None,
) -> Iterator[None]:
    """Make `module` the program: sys.argv, sys.path[0], sys.modules['__main__'] (and the working folder the
    program may change) are all restored afterwards. The packages named in `hidden` are taken out of
    sys.modules meanwhile, so a script with a module of the same name imports its own (e.g. a `cli.py`).
    `on_os_exit(code)` is called when the program ends the process with os._exit (see before_os_exit)."""
    saved_argv = sys.argv
    saved_path0 = sys.path[0] if sys.path else None
    saved_main = sys.modules.get("__main__")
    saved_cwd = os.getcwd()  # a script may chdir; the caller's relative paths (an output folder) must still hold
    sys.argv = list(argv)
    # Python puts the script's own folder first on sys.path (in place of the launcher's entry).
    if sys.path:
        sys.path[0] = directory
    else:
        sys.path.insert(0, directory)
    sys.modules["__main__"] = module  # pickling and multiprocessing find the user's classes here
    ours = {name: mod for name, mod in sys.modules.items() if _within(name, hidden)}
    for name in ours:
        del sys.modules[name]
    try:
        with before_os_exit(on_os_exit):
            yield
    finally:
        for name in [n for n in sys.modules if _within(n, hidden)]:
            del sys.modules[name]
        sys.modules.update(ours)
        with contextlib.suppress(OSError):  # the folder may be gone; then there is nothing to return to
            os.chdir(saved_cwd)
        sys.argv = saved_argv
        if saved_path0 is None:
            if sys.path and sys.path[0] == directory:
                del sys.path[0]
        elif sys.path:
            sys.path[0] = saved_path0
        if saved_main is not None:
            sys.modules["__main__"] = saved_main
        else:
            sys.modules.pop("__main__", None)


def run_script(
    path: Path,
    args: Sequence[str],
    *,
    hidden: Sequence[str] = (),
    on_os_exit: Callable[[int], None] | None = None,
) -> Outcome:
    """Compile and execute the script as `__main__`; exceptions (also SyntaxError) become the Outcome.
    `hidden`: packages the script must not see as already imported; `on_os_exit`: see running_as_main."""
    filename = os.path.abspath(path)  # Python >= 3.9 gives the main script an absolute __file__
    module = main_module(filename, importlib.machinery.SourceFileLoader("__main__", filename))
    directory = os.path.dirname(os.path.realpath(path))
    with running_as_main(module, [str(path), *args], directory, hidden=hidden, on_os_exit=on_os_exit):
        try:
            source = Path(filename).read_bytes()
            code = compile(source, filename, "exec", dont_inherit=True)
            exec(code, module.__dict__)
        except BaseException as exc:
            outcome = ended_by(exc)
            return Outcome(outcome.exit_code, outcome.error, module.__dict__)
    return Outcome(0, None, module.__dict__)
