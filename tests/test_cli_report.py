"""The reporter: progress on a terminal only, nothing in quiet mode, one JSON document in json mode."""

from __future__ import annotations

import json
import sys

import pytest

from cli.report import Reporter, table


def test_progress_bar_on_a_terminal(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    items = list(Reporter().progress(iter([1, 2, 3]), "writing 3 passes", 3))
    assert items == [1, 2, 3]
    err = capsys.readouterr().err
    assert "writing 3 passes" in err and "3/3" in err


@pytest.mark.parametrize("options", [{"quiet": True}, {"as_json": True}, {}])
def test_no_progress_bar_when_quiet_json_or_piped(capsys: pytest.CaptureFixture[str], options: dict[str, bool]) -> None:
    assert list(Reporter(**options).progress([1, 2, 3], "writing", 3)) == [1, 2, 3]
    assert capsys.readouterr().err == ""


def test_modes(capsys: pytest.CaptureFixture[str]) -> None:
    quiet = Reporter(quiet=True)
    quiet.line("result")
    quiet.notice("skipped a magic")
    quiet.error("could not write")
    quiet.emit({"a": 1})
    out, err = capsys.readouterr()
    assert out == "" and err == "Error: could not write\n"
    machine = Reporter(as_json=True)
    machine.line("result")
    machine.notice("skipped a magic")
    machine.emit({"a": 1})
    out, err = capsys.readouterr()
    assert json.loads(out) == {"a": 1, "notices": ["skipped a magic"], "errors": []} and err == ""
    person = Reporter()
    person.line("result")
    person.notice("skipped a magic")
    out, err = capsys.readouterr()
    assert out == "result\n" and err == "gradtrace: skipped a magic\n"


def test_table() -> None:
    assert table([["1", "cell 3"], ["12", "x"]], ["pass", "label"]) == (
        "pass  label\n----  ------\n1     cell 3\n12    x"
    )


def test_a_models_many_leaves_stay_one_short_cell() -> None:
    from cli.pass_report import leaf_list

    names = [f"model.layers.{i}.weight" for i in range(48)]
    assert (
        leaf_list(names) == "model.layers.0.weight, model.layers.1.weight, model.layers.2.weight, "
        "model.layers.3.weight, … (+44 more)"
    )
    assert leaf_list(["x", "w"]) == "x, w" and leaf_list([]) == "–"
