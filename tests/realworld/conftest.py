"""The real-world comparison's summary: for each script run in this session, both outcomes and what gradtrace
wrote into its output folder."""

from __future__ import annotations

from typing import Any

from tests.realworld.harness import RUNS, describe


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RUNS:
        return
    terminalreporter.section("gradtrace real-world scripts: plain vs traced, and what gradtrace wrote")
    for name in sorted(RUNS):
        terminalreporter.write_line(describe(RUNS[name]))
