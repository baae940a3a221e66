"""User-style scripts (scripts/*.py) run plainly and under `gradtrace run`: the user must see no difference.

For each script, both runs happen once per session (side by side, see harness.py); the tests then check, each on
its own: the plain run works (exit code, gradients saved), the exit codes agree, the script's stdout agrees (the
pass table gradtrace prints after it is cut off), every saved gradient agrees bit for bit (dtype, layout, sparse
indices and values), and gradtrace wrote at least one pass's files. What gradtrace wrote for each script is listed
in the terminal summary (section "gradtrace real-world scripts"); `python -m tests.realworld.harness` prints the
same without pytest.

Known differences are strict xfails (KNOWN below): when a fix makes a case pass, the strict xfail fails, and its
entry must be removed.
"""

from __future__ import annotations

import pytest

from tests.realworld.harness import EXPECTED_EXIT, GRADTRACE, RUNS, Comparison, compare, describe, script_names

pytestmark = [
    pytest.mark.slow,  # about 20 scripts, each run twice in fresh interpreters
    pytest.mark.graphviz,  # `gradtrace run` draws SVGs by default
    pytest.mark.skipif(not GRADTRACE.exists(), reason=f"no gradtrace console script at {GRADTRACE}"),
]

EVERY_CHECK = frozenset({"exit code", "stdout", "grads", "passes written"})

# script -> (the checks that fail today, why): the differences observed with torch 2.13 (issue 16)
KNOWN: dict[str, tuple[frozenset[str], str]] = {}


def cases(check: str) -> list[object]:
    params: list[object] = []
    for name in script_names():
        checks, why = KNOWN.get(name, (frozenset(), ""))
        marks = [pytest.mark.xfail(strict=True, reason=f"issue 16: {why}")] if check in checks else []
        params.append(pytest.param(name, marks=marks))
    return params


@pytest.fixture
def compared(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Comparison:
    """Both runs of the test's script, made on first use in this session."""
    script: str = request.node.callspec.params["script"]
    if script not in RUNS:
        RUNS[script] = compare(script, tmp_path_factory.mktemp(script))
    return RUNS[script]


@pytest.mark.parametrize("script", script_names())
def test_the_script_runs_plainly(script: str, compared: Comparison) -> None:
    assert compared.plain.exit_code == EXPECTED_EXIT.get(script, 0), compared.plain.stderr
    assert compared.plain.grads is not None, "the script saved no gradients"
    assert compared.plain.stdout


@pytest.mark.parametrize("script", cases("exit code"))
def test_same_exit_code(script: str, compared: Comparison) -> None:
    assert "exit code" not in compared.differences, describe(compared) + "\n" + compared.traced.stderr[-3000:]


@pytest.mark.parametrize("script", cases("stdout"))
def test_same_stdout(script: str, compared: Comparison) -> None:
    assert "stdout" not in compared.differences, describe(compared) + "\n" + compared.traced.stderr[-3000:]


@pytest.mark.parametrize("script", cases("grads"))
def test_same_gradients_bit_for_bit(script: str, compared: Comparison) -> None:
    assert "grads" not in compared.differences, describe(compared) + "\n" + compared.traced.stderr[-3000:]


@pytest.mark.parametrize("script", cases("passes written"))
def test_gradtrace_wrote_the_passes(script: str, compared: Comparison) -> None:
    """No silent loss: a script that makes backward passes gets at least one pass's files."""
    assert "passes written" not in compared.differences, describe(compared) + "\n" + compared.traced.stderr[-3000:]
