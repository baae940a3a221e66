"""Shared fixtures (hook counting, engine restored) and the tally of what the robustness tests tried, printed
after the run so the figures in the README can be re-measured."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from torch.autograd.variable import Variable
from torch.nn.modules import module as torch_module

from tests.fuzzing import PROFILE, TALLY
from tracer.record import pass_hooks, pass_recorder, recorder


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TALLY:
        return
    terminalreporter.section(f"gradtrace robustness tally (GRADTRACE_FUZZ={PROFILE})")
    for what, count in sorted(TALLY.items()):
        terminalreporter.write_line(f"{count:>8}  {what}")


@pytest.fixture
def hook_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every call of a hook gradtrace registered (one post-hook per node): after its pass it must stay empty.

    Counts the Python hooks, so the native ones are switched off here; test_native.py checks those."""
    monkeypatch.setattr(pass_recorder, "native_recorder", lambda: None)
    calls: list[str] = []
    original = pass_hooks.PythonHooks.hook

    def counting(self: Any, i: int) -> Any:
        post = original(self, i)

        def counted_post(a: Any, b: Any) -> Any:
            calls.append("post")
            return post(a, b)

        return counted_post

    monkeypatch.setattr(pass_hooks.PythonHooks, "hook", counting)
    yield calls


@pytest.fixture
def engine_restored() -> Iterator[None]:
    """The test must leave torch's own autograd engine in place, whatever happened inside it."""
    original = Variable._execution_engine
    yield
    assert Variable._execution_engine is original, "gradtrace's engine wrapper was left installed"
    assert recorder.active_recorders() == [], "a record() block was left open"


@pytest.fixture(params=["native", "python"])
def hooks(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """A test that asks for `hooks` runs with the native recorder (skipped when it is not built) and with the
    Python hooks; the value says which."""
    if request.param == "python":
        monkeypatch.setattr(pass_recorder, "native_recorder", lambda: None)
    elif pass_recorder.native_recorder() is None:
        pytest.skip("the native recorder is not built (python -m tracer.native)")
    return str(request.param)


@pytest.fixture(autouse=True)
def no_global_module_hooks_left() -> Iterator[None]:
    """Nothing of ours survives a test: record(modules=True) and `gradtrace run` take torch's global module hooks
    off when their block closes (a hook left behind would run in every later forward of the process)."""
    yield
    hooks = [name for name in vars(torch_module) if name.startswith("_global_") and name.endswith("hooks")]
    hooks += ["_global_forward_hooks_with_kwargs", "_global_forward_hooks_always_called"]
    left = {name: len(getattr(torch_module, name, {})) for name in hooks if getattr(torch_module, name, {})}
    for name in left:
        getattr(torch_module, name).clear()
    assert not left, f"global module hooks left registered after this test: {left}"
