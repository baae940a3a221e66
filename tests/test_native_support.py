"""Which torch the native recorder supports, and what gradtrace says outside that range (issue 16, item 8).

A torch older than loader.NATIVE_RANGE is not compiled against (its autograd C++ API differs): status, load and
build say "not available for torch X.Y (supported: A.B–C.D); using the Python hooks", never a compiler hint. A
real compile failure on a supported torch still says what failed. The torch version is monkeypatched here;
`./dev compat` runs the real thing against real old and new torch releases.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from tracer.record.native import loader as native

OLDEST, NEWEST = native.NATIVE_RANGE
OLD_TORCH_MESSAGE = (
    f"native recorder: not available for torch 2.1 (supported: {OLDEST[0]}.{OLDEST[1]}–{NEWEST[0]}.{NEWEST[1]}); "
    "using the Python hooks"
)


def shown(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def older_than_supported() -> tuple[str, str]:
    """A torch version string just below the range, and how the message shows it."""
    major, minor = OLDEST
    older = (major, minor - 1) if minor > 0 else (major - 1, 99)
    return f"{older[0]}.{older[1]}.2+cpu", shown(older)


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No real binary is found or built: an empty build folder and a fixed module name (module_name() is cached
    per process and must not be worked out from a patched version)."""
    monkeypatch.delenv("GRADTRACE_NATIVE", raising=False)
    monkeypatch.setenv("GRADTRACE_NATIVE_DIR", str(tmp_path))
    monkeypatch.setattr(native, "module_name", lambda: "gradtrace_native_test")
    monkeypatch.setattr(native, "_loaded", {})
    return tmp_path


def no_compiling(*args: object, **kwargs: object) -> None:
    raise AssertionError("cpp_extension.load must not be called for an unsupported torch")


def test_the_range_is_what_dev_compat_tests() -> None:
    assert OLDEST < NEWEST
    assert native.NATIVE_RANGE == ((2, 5), (2, 14))  # change together with ./dev compat's default and the docs


@pytest.mark.parametrize(
    ("version", "expected"),
    [("2.13.0+cpu", (2, 13)), ("2.1.2", (2, 1)), ("2.14.1+cu130", (2, 14)), ("2.15.0.dev20260101", (2, 15))],
)
def test_torch_version_reads_major_and_minor(monkeypatch: pytest.MonkeyPatch, version: str, expected: tuple) -> None:
    monkeypatch.setattr(torch, "__version__", version)
    assert native.torch_version() == expected


def test_an_old_torch_is_told_plainly_in_the_status(monkeypatch: pytest.MonkeyPatch, isolated: Path) -> None:
    monkeypatch.setattr(torch, "__version__", "2.1.2")
    expected = OLD_TORCH_MESSAGE
    assert native.status() == expected
    assert native.unavailable_reason() == expected
    assert native.load() is None
    assert "compiler" not in native.status()


def test_the_message_itself(monkeypatch: pytest.MonkeyPatch, isolated: Path) -> None:
    """The exact words (the test above builds them from NATIVE_RANGE; this one pins them)."""
    monkeypatch.setattr(native, "NATIVE_RANGE", ((2, 5), (2, 14)))
    monkeypatch.setattr(torch, "__version__", "2.4.1+cpu")
    assert (
        native.status() == "native recorder: not available for torch 2.4 (supported: 2.5–2.14); using the Python hooks"
    )


def test_the_oldest_supported_torch_is_not_refused(monkeypatch: pytest.MonkeyPatch, isolated: Path) -> None:
    monkeypatch.setattr(torch, "__version__", f"{shown(OLDEST)}.0")
    assert native.unavailable_reason() is None
    assert native.status().startswith("native recorder: not built;")
    version, words = older_than_supported()
    monkeypatch.setattr(torch, "__version__", version)
    assert native.status().startswith(f"native recorder: not available for torch {words} ")


def test_building_for_an_old_torch_does_not_compile_and_blames_no_compiler(
    monkeypatch: pytest.MonkeyPatch, isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from torch.utils import cpp_extension

    monkeypatch.setattr(cpp_extension, "load", no_compiling)
    monkeypatch.setattr(torch, "__version__", "2.1.2")
    expected = OLD_TORCH_MESSAGE
    with pytest.raises(native.NativeUnavailableError) as caught:
        native.build()
    assert str(caught.value) == expected
    assert isinstance(caught.value, native.NativeBuildError)  # callers that catch NativeBuildError still do

    assert native.main([]) == native.UNAVAILABLE == 3
    out, err = capsys.readouterr()
    assert err.strip() == expected
    assert "compiler" not in out + err and "apt-get" not in out + err and "Error" not in err
    assert native.main(["--status"]) == 0
    assert capsys.readouterr().out.strip() == expected


def test_gradtrace_native_0_still_wins(monkeypatch: pytest.MonkeyPatch, isolated: Path) -> None:
    monkeypatch.setattr(torch, "__version__", "2.1.2")
    monkeypatch.setenv("GRADTRACE_NATIVE", "0")
    assert native.status().startswith("native recorder: off (GRADTRACE_NATIVE=0)")


COMPILER_OUTPUT = (
    "Error building extension 'gradtrace_native_test': [1/2] c++ -MMD -MF native_hooks.o.d ... -c native_hooks.cpp\n"
    "FAILED: native_hooks.o\n"
    "native_hooks.cpp: In function 'NodePtr {anonymous}::node_of(PyObject*)':\n"
    "native_hooks.cpp:527:66: error: 'struct THPFunction' has no member named 'cdata'\n"
    "ninja: build stopped: subcommand failed.\n"
)


def failing_build(monkeypatch: pytest.MonkeyPatch, *, compiler: str | None) -> None:
    from torch.utils import cpp_extension

    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError(COMPILER_OUTPUT)

    monkeypatch.setattr(cpp_extension, "verify_ninja_availability", lambda: None)
    monkeypatch.setattr(cpp_extension, "load", fail)
    monkeypatch.setattr(shutil, "which", lambda name: compiler)


def test_a_compile_failure_on_a_supported_torch_says_what_failed(
    monkeypatch: pytest.MonkeyPatch, isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(torch, "__version__", f"{shown(NEWEST)}.0")
    monkeypatch.setattr(native, "_missing_build_tools", lambda: "")
    failing_build(monkeypatch, compiler="/usr/bin/c++")
    with pytest.raises(native.NativeBuildError) as caught:
        native.build()
    message = str(caught.value)
    assert not isinstance(caught.value, native.NativeUnavailableError)
    assert message.startswith(f"could not build gradtrace's native recorder for torch {shown(NEWEST)} in {isolated}")
    assert "the compiler said: native_hooks.cpp:527:66: error: 'struct THPFunction' has no member named 'cdata'" in (
        message
    )
    assert "python -m tracer.native --verbose" in message
    assert "not available" not in message and "apt-get" not in message  # a compiler is there: no install hint

    assert native.main([]) == 1
    assert capsys.readouterr().err.startswith("Error: could not build gradtrace's native recorder for torch")


def test_a_missing_compiler_is_still_named(monkeypatch: pytest.MonkeyPatch, isolated: Path) -> None:
    monkeypatch.setattr(torch, "__version__", f"{shown(NEWEST)}.0")
    failing_build(monkeypatch, compiler=None)
    monkeypatch.delenv("CXX", raising=False)
    with pytest.raises(
        native.NativeBuildError, match=r"no C\+\+ compiler \('c\+\+' is not on PATH\).*apt-get install g\+\+"
    ):
        native.build()


def test_a_newer_torch_is_tried_and_a_failure_says_it_is_newer(monkeypatch: pytest.MonkeyPatch, isolated: Path) -> None:
    major, minor = NEWEST
    monkeypatch.setattr(torch, "__version__", f"{major}.{minor + 1}.0")
    assert native.unavailable_reason() is None  # built when asked: most new releases keep the API
    assert native.status().startswith("native recorder: not built;")
    monkeypatch.setattr(native, "_missing_build_tools", lambda: "")
    failing_build(monkeypatch, compiler="/usr/bin/c++")
    with pytest.raises(native.NativeBuildError) as caught:
        native.build()
    assert str(caught.value).startswith(
        f"native recorder: not available for torch {major}.{minor + 1} (supported: {shown(OLDEST)}–{shown(NEWEST)}; "
        "this torch is newer and native_hooks.cpp did not compile against it; the compiler said: native_hooks.cpp:527"
    )
    assert "using the Python hooks" in str(caught.value)
