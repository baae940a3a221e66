"""The %%gradtrace cell magic in an in-process IPython shell (the kernel test runs it in a real kernel too)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from traitlets.config import Config

import tracer
from tracer.display.magic import CellError, parse

pytestmark = pytest.mark.graphviz


@pytest.fixture
def shell() -> Iterator[Any]:
    config = Config()
    config.HistoryManager.hist_file = ":memory:"  # nothing written to the home folder
    sh = InteractiveShell.instance(config=config)  # display() and capture_output() talk to the singleton
    try:
        result = sh.run_cell("%load_ext tracer")
        assert result.success, result
        yield sh
    finally:
        sh.cleanup()
        InteractiveShell.clear_instance()


def _run(shell: Any, source: str) -> tuple[Any, list[dict[str, str]], str]:
    with capture_output() as captured:
        result = shell.run_cell(source)
    return result, [dict(o.data) for o in captured.outputs], captured.stdout


def test_magic_records_and_shows_every_pass(shell: Any) -> None:
    result, shown, _ = _run(
        shell,
        "%%gradtrace rec\n"
        "import torch\n"
        "x = torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)\n"
        "z = 2 * x + 3 * x[3]\n"
        "z.backward(torch.tensor([1.0, 0.0, 0.0, 0.0]), retain_graph=True)\n"
        "z.backward(torch.tensor([0.0, 1.0, 0.0, 0.0]))\n",
    )
    assert result.success, result
    rec = shell.user_ns["rec"]
    assert isinstance(rec, tracer.Recorder) and len(rec.traces) == 2
    x = shell.user_ns["x"]
    assert x.grad.tolist() == [2.0, 2.0, 0.0, 6.0]  # [2, 0, 0, 3] + [0, 2, 0, 3]: accumulated without zero_()
    assert rec.traces[1].leaves["x"].grad_before.values == (2.0, 0.0, 0.0, 3.0)
    assert rec.traces[1].leaves["x"].grad_total.values == tuple(x.grad.tolist())
    assert rec.traces[0].leaves["x"].name == "x"  # leaves are named after the cell's variables
    assert len(shown) == 1
    assert set(shown[0]) == {"text/html", "text/plain"}
    assert shown[0]["text/html"].count("<svg") == 2
    assert "pass #1: backward of z[4]" in shown[0]["text/html"] and "pass #2: backward of z[4]" in shown[0]["text/html"]
    assert shown[0]["text/plain"].startswith("<tracer.record: 2 passes>")


def test_magic_steps_shows_one_stepper_per_pass(shell: Any) -> None:
    result, shown, _ = _run(
        shell,
        "%%gradtrace --steps --capture full\n"
        "import torch\n"
        "w = torch.tensor([0.5, -1.0], requires_grad=True)\n"
        "(w * w).sum().backward()\n",
    )
    assert result.success, result
    assert [set(s) for s in shown] == [{"text/html", "text/plain"}] * 2
    title, stepper = shown
    assert title["text/plain"] == "pass #1: backward of output0[] — 3 steps, 1 leaf"
    assert stepper["text/html"].startswith('<div class="gt-stepper"') and 'data-steps="3"' in stepper["text/html"]
    assert shell.user_ns["w"].grad.tolist() == [1.0, -2.0]


def test_a_failing_cell_still_shows_its_passes_and_fails(shell: Any) -> None:
    result, shown, _ = _run(
        shell,
        "%%gradtrace\n"
        "import torch\n"
        "a = torch.tensor([1.0, 2.0], requires_grad=True)\n"
        "(a * 3).sum().backward()\n"
        "raise ValueError('after the pass')\n",
    )
    assert isinstance(result.error_in_exec, CellError)
    assert str(result.error_in_exec) == (
        "the cell raised ValueError (traceback above); %%gradtrace showed the 1 pass recorded before that"
    )
    assert result.error_in_exec._render_traceback_() == [f"CellError: {result.error_in_exec}"]
    assert len(shown) == 1 and shown[0]["text/html"].count("<svg") == 1
    result, shown, _ = _run(shell, "%%gradtrace\n1 / 0\n")
    assert isinstance(result.error_in_exec, CellError) and "no backward pass ran before that" in str(
        result.error_in_exec
    )
    assert shown == []


def test_the_magic_line_is_checked(shell: Any) -> None:
    result, _, _ = _run(shell, "%%gradtrace --capture everything\nran = True\n")
    assert isinstance(result.error_in_exec, UsageError)  # IPython shows it as one line, the cell does not run
    assert "ran" not in shell.user_ns
    assert parse("").steps is False and parse("--steps r").name == "r" and parse("--capture stats").capture == "stats"

    with pytest.raises(UsageError, match=r"argument --capture: invalid choice: 'everything'"):
        parse("--capture everything")
    with pytest.raises(UsageError, match=r"unrecognized arguments: --stpes"):
        parse("--stpes")
    with pytest.raises(UsageError, match=r"NAME must be a Python variable name, got '1rec'"):
        parse("1rec")


def test_an_empty_cell_says_no_pass_ran(shell: Any) -> None:
    result, shown, _ = _run(shell, "%%gradtrace\nx = 1\n")
    assert result.success
    assert shown == [{"text/plain": "<tracer.record: 0 passes>: no backward pass ran inside the block"}]
