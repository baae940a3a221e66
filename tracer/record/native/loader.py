"""The optional native recorder (native_hooks.cpp): build it once, load it when built, say how to get it.

Recording works without it (Python post-hooks, same Trace); with it a recorded backward pass costs a few
percent instead of about a quarter more. It is compiled against the installed torch, so it is built on the
user's machine: `python -m tracer.native` (the project's `./dev` set-up does this), never silently in the
middle of a user's backward pass. GRADTRACE_NATIVE=0 turns it off. It is built only for the torch versions
in NATIVE_RANGE (the ones `./dev compat` tests); any other torch records with the Python hooks and is told so.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import re
import shutil
import sys
import sysconfig
import time
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import torch

SOURCE = Path(__file__).with_name("native_hooks.cpp")
_loaded: dict[str, ModuleType | None] = {}

# The torch versions (major, minor) native_hooks.cpp is known to compile and pass its tests against: the oldest
# `./dev compat` tests, and the newest it has tested. Older ones are not tried (their autograd C++ API differs);
# newer ones are tried, and a failed build says that torch is newer than the newest tested.
NATIVE_RANGE = ((2, 5), (2, 14))


def torch_version() -> tuple[int, int]:
    """(major, minor) of the installed torch: "2.13.0+cpu" gives (2, 13)."""
    return _parse_version(str(torch.__version__))


@functools.cache
def _parse_version(version: str) -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", version)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def _shown(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def unavailable_reason() -> str | None:
    """Why the native recorder cannot be had with this torch (its version is older than NATIVE_RANGE), or None."""
    version = torch_version()
    oldest, newest = NATIVE_RANGE
    if version >= oldest:
        return None
    return (
        f"native recorder: not available for torch {_shown(version)} (supported: {_shown(oldest)}–{_shown(newest)}); "
        "using the Python hooks"
    )


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
    if not enabled() or unavailable_reason() is not None:
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
    """Compile native_hooks.cpp for the installed torch (about 40 s, once); raises NativeBuildError, or
    NativeUnavailableError for a torch outside NATIVE_RANGE."""
    reason = unavailable_reason()
    if reason is not None:
        raise NativeUnavailableError(reason)
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
        raise NativeBuildError(_build_failure(exc, directory)) from exc
    _loaded[module_name()] = module
    return cast(ModuleType, module)


def _build_failure(exc: BaseException, directory: Path) -> str:
    """What went wrong in a failed build, in that order of likelihood: no compiler or no Python headers (the
    fix is an install), a torch newer than the newest tested (its C++ API moved), else the compiler's first
    error, for a bug report."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    cause = f"{type(exc).__name__}: {first}"
    errors = [line.strip() for line in text.splitlines() if "error:" in line]
    details = "; the compiler said: " + errors[0] if errors else ""
    see = "run `python -m tracer.native --verbose` to see the compiler's output"
    missing = _missing_build_tools()
    if missing:
        return (
            f"could not build gradtrace's native recorder in {directory} ({cause}): {missing}; it needs a C++17 "
            "compiler (g++ or clang++) and Python's headers, e.g. `sudo apt-get install g++ python3-dev`; "
            f"{see}. gradtrace records without it, only slower"
        )
    version, newest = torch_version(), NATIVE_RANGE[1]
    if version > newest:
        return (
            f"native recorder: not available for torch {_shown(version)} (supported: {_shown(NATIVE_RANGE[0])}–"
            f"{_shown(newest)}; this torch is newer and native_hooks.cpp did not compile against it{details}); "
            f"using the Python hooks. {see}"
        )
    return (
        f"could not build gradtrace's native recorder for torch {_shown(version)} in {directory} ({cause}"
        f"{details}); {see}. gradtrace records without it, only slower"
    )


def _missing_build_tools() -> str:
    """'' when a C++ compiler and Python.h are there, else what is missing (as torch looks for them)."""
    missing = []
    compiler = os.environ.get("CXX") or "c++"
    if shutil.which(compiler.split()[0]) is None:
        missing.append(f"no C++ compiler ({compiler!r} is not on PATH)")
    include = sysconfig.get_paths().get("include", "")
    if not (include and Path(include, "Python.h").is_file()):
        missing.append(f"no Python headers (no Python.h in {include})")
    return " and ".join(missing)


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


class NativeUnavailableError(NativeBuildError):
    """The installed torch is older than NATIVE_RANGE: nothing to build; the Python hooks record."""


def status() -> str:
    """One line: whether recording uses the native hooks here, and if not, why and how to change it."""
    if not enabled():
        return "native recorder: off (GRADTRACE_NATIVE=0); recording uses Python hooks"
    reason = unavailable_reason()
    if reason is not None:
        return reason
    if load() is not None:
        return f"native recorder: on ({build_directory() / module_name()}.so)"
    return "native recorder: not built; recording uses Python hooks. Build it with: python -m tracer.native"


UNAVAILABLE = 3  # main()'s exit status for a torch outside NATIVE_RANGE (1: a build that failed)


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
    except NativeUnavailableError as exc:
        print(exc, file=sys.stderr)
        return UNAVAILABLE
    except NativeBuildError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    print(f"built in {time.perf_counter() - started:.0f} s; {status()}")
    return 0
