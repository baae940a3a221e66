"""Every command and option is documented: in --help (with a help text) and in README's "Command line" section."""

from __future__ import annotations

import re

import click
import pytest

from cli.main import cli
from cli.options import DIRECTIONS, DRAWING_OPTIONS, THEMES
from tests.cli_helpers import ROOT, invoke

COMMANDS = sorted(cli.commands)


def readme_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^## Command line\n(.*?)(?=^## )", text, flags=re.S | re.M)
    assert match, "README has no '## Command line' section"
    return match.group(1)


def command_section(name: str) -> str:
    match = re.search(rf"^### `gradtrace {name}`.*?(?=^### |\Z)", readme_section(), flags=re.S | re.M)
    assert match, f"README's Command line section has no '### `gradtrace {name}`' part"
    return match.group(0)


def test_the_commands() -> None:
    assert COMMANDS == ["analyze", "gallery", "render", "run"]


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_is_in_readme_with_its_python_equivalent(name: str) -> None:
    part = command_section(name)
    assert f"gradtrace {name} " in part
    assert "In Python:" in part
    assert re.search(r"```python\n.*tracer\.", part, flags=re.S), "the Python example uses the tracer API"


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_is_in_help_and_in_readme(name: str) -> None:
    command = cli.commands[name]
    help_text = invoke(name, "--help").stdout
    section = readme_section()
    for param in command.params:
        if not isinstance(param, click.Option) or param.name == "help":
            continue
        assert param.help, f"{name} {param.opts[0]} has no help text"
        for flag in [*param.opts, *param.secondary_opts]:
            assert flag in help_text, f"{flag} not in `gradtrace {name} --help`"
            if flag.startswith("--"):
                assert re.search(rf"`[^`]*{re.escape(flag)}\b", section), f"{flag} of {name} is not in README"


def test_group_help_lists_every_command() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for name in COMMANDS:
        assert re.search(rf"^  {name}\s", result.stdout, flags=re.M)


def test_drawing_options_match_the_renderer() -> None:
    from tracer.render.options import DIRECTIONS as RENDER_DIRECTIONS
    from tracer.render.options import OPTION_NAMES, THEME_NAMES

    assert DIRECTIONS == RENDER_DIRECTIONS
    assert THEMES == THEME_NAMES
    assert set(DRAWING_OPTIONS) <= set(OPTION_NAMES)
