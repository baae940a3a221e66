"""Every command and option is documented: in --help (with a help text) and in the command line reference,
docs/cli.md (README links to it)."""

from __future__ import annotations

import re

import click
import pytest

from cli.main import cli
from tests.cli_helpers import ROOT, invoke

COMMANDS = sorted(cli.commands)


REFERENCE = ROOT / "docs" / "cli.md"


def reference_section() -> str:
    text = REFERENCE.read_text(encoding="utf-8")
    match = re.search(r"^## Commands\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    assert match, "docs/cli.md has no '## Commands' section"
    return match.group(1)


def command_section(name: str) -> str:
    match = re.search(rf"^### `gradtrace {name}`.*?(?=^### |\Z)", reference_section(), flags=re.S | re.M)
    assert match, f"docs/cli.md's Commands section has no '### `gradtrace {name}`' part"
    return match.group(0)


def test_the_commands() -> None:
    assert COMMANDS == ["analyze", "gallery", "render", "run", "why"]


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_is_in_the_reference_with_its_python_equivalent(name: str) -> None:
    part = command_section(name)
    assert f"gradtrace {name} " in part
    assert "In Python:" in part
    assert re.search(r"```python\n.*tracer\.", part, flags=re.S), "the Python example uses the tracer API"


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_is_in_help_and_in_the_reference(name: str) -> None:
    command = cli.commands[name]
    help_text = invoke(name, "--help").stdout
    section = reference_section()
    for param in command.params:
        if not isinstance(param, click.Option) or param.name == "help":
            continue
        assert param.help, f"{name} {param.opts[0]} has no help text"
        for flag in [*param.opts, *param.secondary_opts]:
            assert flag in help_text, f"{flag} not in `gradtrace {name} --help`"
            if flag.startswith("--"):
                assert re.search(rf"`[^`]*{re.escape(flag)}\b", section), f"{flag} of {name} is not in docs/cli.md"


def test_group_help_lists_every_command() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for name in COMMANDS:
        assert re.search(rf"^  {name}\s", result.stdout, flags=re.M)


@pytest.mark.parametrize("name", ["run", "render"])
def test_every_drawing_option_has_a_flag(name: str) -> None:
    """A new RenderOptions field fails here until `gradtrace run` and `render` can set it."""
    import dataclasses

    from tracer.render.options import RenderOptions

    flags = {p.name for p in cli.commands[name].params if isinstance(p, click.Option)}
    missing = [f.name for f in dataclasses.fields(RenderOptions) if f.name not in flags]
    assert not missing, f"RenderOptions fields without a `gradtrace {name}` flag: {missing}"


def test_choices_and_defaults_are_the_librarys() -> None:
    from tracer.model.records import CAPTURES, Options
    from tracer.render import options

    params = {p.name: p for p in cli.commands["run"].params}

    def choices(param: str) -> tuple[str, ...]:
        kind = params[param].type
        assert isinstance(kind, click.Choice)
        return tuple(kind.choices)

    assert choices("direction") == options.DIRECTIONS
    assert choices("theme") == options.THEME_NAMES
    assert choices("detail") == options.DETAILS
    assert choices("view") == options.VIEWS
    assert choices("repeats") == options.REPEATS
    assert choices("capture") == CAPTURES
    ctx = click.Context(cli.commands["run"])
    for field in ("capture", "max_values", "jacobian_limit"):
        assert params[field].get_default(ctx) == getattr(Options(), field)
    help_text = invoke("run", "--help").stdout
    assert f"[default: {Options().max_values};" in help_text


def test_a_choice_in_any_case_becomes_the_librarys_spelling() -> None:
    params = {p.name: p for p in cli.commands["render"].params}
    assert params["direction"].type.convert("lr", None, None) == "LR"
    assert params["theme"].type.convert("Dark", None, None) == "dark"
