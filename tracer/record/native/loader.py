"""The optional native recorder (native_hooks.cpp): build it once, load it when built, say how to get it.

Recording works without it (Python post-hooks, same Trace); with it a recorded backward pass costs a few
percent instead of about a quarter more. It is compiled against the installed torch, so it is built on the
user's machine: `python -m tracer.native` (the project's `./dev` set-up does this), never silently in the
middle of a user's backward pass. GRADTRACE_NATIVE=0 turns it off.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import torch

SOURCE = Path(__file__).with_name("native_hooks.cpp")
_loaded: dict[str, ModuleType | None] = {}


@functools.cache
def module_name() -> str:
    """Named by the source and the torch it is built against: a new torch or a changed source gets a fresh
    build instead of a stale binary with a mismatched ABI. Worked out once per process (load() runs for
    every recorded pass)."""
    digest = hashlib.sha256(SOURCE.read_bytes() + torch.__version__.encode()).hexdigest()[:16]
    return f"gradtrace_native_{digest}"


def build_directory() -> Path:
    """Where the binary lives: $GRADTRACE_NATIVE_DIR, else gradtrace's folder in the user's cache."""
    root = os.environ.get("GRADTRACE_NATIVE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gradtrace", "native"
    )
    return Path(root) / module_name()


def enabled() -> bool:
    return os.environ.get("GRADTRACE_NATIVE", "1") != "0"


def load() -> Any | None:
    """The native module when it is built for this torch and not turned off, else None (Python hooks)."""
    if not enabled():
        return None
    name = module_name()
    if name not in _loaded:
        _loaded[name] = _import_built(name)
    return _loaded[name]


def _import_built(name: str) -> ModuleType | None:
    path = build_directory() / f"{name}.so"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - a file importlib cannot read
        return None
    try:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except ImportError:  # a binary that no longer matches this interpreter or torch: use the Python hooks
        return None
    return module


def build(*, verbose: bool = False) -> ModuleType:
    """Compile native_hooks.cpp for the installed torch (about 40 s, once); raises NativeBuildError."""
    from torch.utils import cpp_extension

    directory = build_directory()
    directory.mkdir(parents=True, exist_ok=True)
    _ninja_on_path()
    try:
        cpp_extension.verify_ninja_availability()
    except RuntimeError as exc:
        raise NativeBuildError(
            "building gradtrace's native recorder needs ninja; install it with `pip install ninja` and run "
            "`python -m tracer.native` again (gradtrace records without it, only slower)"
        ) from exc
    try:
        module = cpp_extension.load(
            name=module_name(),
            sources=[str(SOURCE)],
            build_directory=str(directory),
            extra_cflags=["-O2"],
            verbose=verbose,
        )
    except (RuntimeError, OSError, ImportError) as exc:
        raise NativeBuildError(
            f"could not build gradtrace's native recorder in {directory} ({type(exc).__name__}: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}); it needs a C++17 compiler (g++ or "
            "clang++) and Python's headers, e.g. `sudo apt-get install g++ python3-dev`; run with verbose=True "
            "(`python -m tracer.native --verbose`) to see the compiler's output. gradtrace records without it, "
            "only slower"
        ) from exc
    _loaded[module_name()] = module
    return cast(ModuleType, module)


def _ninja_on_path() -> None:
    """torch runs `ninja` from PATH; the ninja package from PyPI sits in the environment's bin folder, which
    is not on PATH when Python is called by its full path (as ./dev does)."""
    try:
        import ninja
    except ImportError:
        return
    folder = str(getattr(ninja, "BIN_DIR", ""))
    if folder and folder not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = folder + os.pathsep + os.environ.get("PATH", "")


class NativeBuildError(RuntimeError):
    """The native recorder could not be built; the message says what is missing and how to get it."""


def status() -> str:
    """One line: whether recording uses the native hooks here, and if not, why and how to change it."""
    if not enabled():
        return "native recorder: off (GRADTRACE_NATIVE=0); recording uses Python hooks"
    if load() is not None:
        return f"native recorder: on ({build_directory() / module_name()}.so)"
    return "native recorder: not built; recording uses Python hooks. Build it with: python -m tracer.native"


def main(argv: list[str]) -> int:
    verbose = "--verbose" in argv
    if "--status" in argv:
        print(status())
        return 0
    if load() is not None:
        print(status())
        return 0
    started = time.perf_counter()
    try:
        build(verbose=verbose)
    except NativeBuildError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    print(f"built in {time.perf_counter() - started:.0f} s; {status()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
