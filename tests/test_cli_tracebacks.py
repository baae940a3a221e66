"""The user's traceback: gradtrace's frames are taken out, the user's (and torch's) stay, in order."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest

from cli.tracebacks import show_user_exception
from tests.cli_helpers import ROOT, our_frames, write_script
from tracer.record.script_runner import run_script
from tracer.record.user_traceback import strip_exception


def frame_files(exc: BaseException) -> list[str]:
    return [f.filename for f in traceback.extract_tb(exc.__traceback__)]


def test_our_frames_are_removed_and_the_users_kept(tmp_path: Path) -> None:
    script = write_script(
        tmp_path,
        "chain.py",
        """
        def inner():
            raise KeyError("missing")

        def outer():
            try:
                inner()
            except KeyError as exc:
                raise ValueError("while loading") from exc

        outer()
        """,
    )
    outcome = run_script(script, [])
    error = outcome.error
    assert outcome.exit_code == 1 and isinstance(error, ValueError)
    assert any(f.startswith(str(ROOT / "tracer")) for f in frame_files(error))  # the runner's own frames, before
    strip_exception(error)
    assert frame_files(error) == [str(script), str(script)]
    assert error.__cause__ is not None and frame_files(error.__cause__) == [str(script), str(script)]


def test_the_printed_traceback_has_the_chain_and_no_frame_of_ours(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = write_script(tmp_path, "boom.py", "def f():\n    raise RuntimeError('boom')\nf()\n")
    outcome = run_script(script, [])
    assert outcome.error is not None
    show_user_exception(outcome.error)
    err = capsys.readouterr().err
    assert err == (
        "Traceback (most recent call last):\n"
        f'  File "{script}", line 3, in <module>\n    f()\n'
        f"  File \"{script}\", line 2, in f\n    raise RuntimeError('boom')\n"
        "RuntimeError: boom\n"
    )


def test_the_frame_detector_is_not_vacuous() -> None:
    text = f'Traceback (most recent call last):\n  File "{ROOT / "cli" / "main.py"}", line 3, in run\n'
    assert len(our_frames(text)) == 1
    text = f'  File "{ROOT / "tracer" / "recorder.py"}", line 9, in _run_recorded\n'
    assert len(our_frames(text)) == 1
