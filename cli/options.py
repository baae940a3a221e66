"""Option groups shared by several commands (recording, drawing, reporting), as click decorators.

Every drawing option maps to the field of the same name of the library's RenderOptions (the keywords of
`Trace.save` / `Trace.svg`); an option left out is not passed, so the renderer's own default applies. The allowed
values and the recorder's defaults are the library's own constants, read when click first needs them (to parse
a value or to show a command's --help): importing this module imports neither `tracer` nor torch, so
`gradtrace --help` stays instant.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from .outputs import FORMATS
from .passes import PassesType

F = TypeVar("F", bound=Callable[..., Any])

RECORDER_OPTIONS = ("capture", "max_values", "jacobian_limit", "modules")
RECORDS = "tracer.model.records"  # CAPTURES and the recorder's Options
RENDER_OPTIONS = "tracer.render.options"  # RenderOptions and its vocabularies


def library(module: str, name: str) -> Any:
    """The library's `module.name` (importing `tracer`, and with it torch, the first time)."""
    return getattr(importlib.import_module(module), name)


def drawing_option_names() -> tuple[str, ...]:
    """Every field of RenderOptions: each has a flag here, and drawing_from passes the ones given."""
    names: tuple[str, ...] = library(RENDER_OPTIONS, "OPTION_NAMES")
    return names


class LibraryChoice(click.Choice):  # type: ignore[type-arg]
    """One of the library's allowed values (`module.name`, a tuple of strings), read when first needed.

    `any_case=True` takes a value in any case and turns it into the library's spelling ('lr' -> 'LR')."""

    def __init__(self, module: str, name: str, *, any_case: bool = False) -> None:
        self.vocabulary = (module, name)
        self.any_case = any_case
        super().__init__(())

    @property  # type: ignore[override]
    def choices(self) -> Sequence[str]:
        values: tuple[str, ...] = library(*self.vocabulary)
        return values

    @choices.setter
    def choices(self, _value: Sequence[str]) -> None:  # click.Choice.__init__ sets it: the library's stay
        pass

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if self.any_case and isinstance(value, str):
            value = next((c for c in self.choices if str(c).lower() == value.lower()), value)
        return super().convert(value, param, ctx)


class LibraryDefault:
    """A default read from the library when click needs it: called to parse, shown as text in --help."""

    def __init__(self, read: Callable[[], Any]) -> None:
        self.read = read

    def __call__(self) -> Any:
        return self.read()

    def __str__(self) -> str:
        return str(self.read())


def recording_default(field: str) -> LibraryDefault:
    """The default of the recorder's option `field`: the library's Options record (tracer.record's defaults)."""
    return LibraryDefault(lambda: getattr(library(RECORDS, "Options")(), field))


def _apply(decorators: list[Callable[[F], F]], f: F) -> F:
    for decorator in reversed(decorators):
        f = decorator(f)
    return f


def recorder_options(f: F) -> F:
    """--capture, --max-values, --jacobian-limit: how much of each tensor the recorder keeps; --names."""
    return _apply(
        [
            click.option(
                "--capture",
                type=LibraryChoice(RECORDS, "CAPTURES"),
                default=recording_default("capture"),
                show_default=True,
                help="What to keep of each gradient: auto (small tensors in full, large ones as statistics), "
                "stats (exact statistics of every tensor) or full (every value).",
            ),
            click.option(
                "--max-values",
                type=click.IntRange(min=0),
                default=recording_default("max_values"),
                show_default=True,
                metavar="N",
                help="Keep the values of tensors with at most N elements (with --capture auto).",
            ),
            click.option(
                "--jacobian-limit",
                type=click.IntRange(min=0),
                default=recording_default("jacobian_limit"),
                show_default=True,
                metavar="N",
                help="Record a node's local Jacobian when both its sides have at most N elements (0: never).",
            ),
            click.option(
                "--modules/--no-modules",
                default=True,
                show_default=True,
                help="Tag every backward node with the nn.Module whose forward made it (torch's global module hooks, "
                "no change to the script), for --view modules, --depth and --focus on a module.",
            ),
            click.option(
                "--names",
                "names",
                multiple=True,
                metavar="VAR",
                help="Name leaves after this variable of the script or notebook, looked up when each pass starts: "
                "a tensor, or an nn.Module whose parameters become VAR.0.weight, ...; a dotted path "
                "(trainer.model) reaches inside objects. Repeatable. Without it, leaves are named after the "
                "variables in scope where backward is called.",
            ),
        ],
        f,
    )


def drawing_options(f: F) -> F:
    """The renderer's options: layout, numbers, what to show, theme."""
    return _apply(
        [
            click.option(
                "--direction",
                type=LibraryChoice(RENDER_OPTIONS, "DIRECTIONS", any_case=True),
                help="Layout: TB puts the seed at the top and the leaves at the bottom, LR runs left to right.",
            ),
            click.option("--precision", type=click.IntRange(1, 17), metavar="DIGITS", help="Significant digits."),
            click.option(
                "--max-elements",
                type=click.IntRange(min=0),
                metavar="N",
                help="Print tensors (and Jacobian sides) of up to N elements in full; larger ones as statistics.",
            ),
            click.option("--jacobian/--no-jacobian", default=None, help="Show each node's local Jacobian J."),
            click.option("--edge-labels/--no-edge-labels", default=None, help="Write the gradient on each edge."),
            click.option("--stats/--no-stats", default=None, help="Statistics line for tensors too large to print."),
            click.option("--legend/--no-legend", default=None, help="Draw the colour scale and line styles."),
            click.option("--clusters/--no-clusters", default=None, help="Group nodes by the nn.Module that made them."),
            click.option(
                "--detail",
                type=LibraryChoice(RENDER_OPTIONS, "DETAILS"),
                help="Node tables: full (v, J, vᵀJ), compact (name and norms; no edge labels), or auto (default: "
                "compact when the graph is large).",
            ),
            click.option(
                "--theme",
                type=LibraryChoice(RENDER_OPTIONS, "THEME_NAMES", any_case=True),
                help="Colours: light, dark, or transparent (reads on light and dark backgrounds).",
            ),
            click.option(
                "--step",
                type=click.IntRange(min=1),
                metavar="K",
                help="Draw the graph as it is at step K: that step active, earlier ones done, later ones pending.",
            ),
            click.option(
                "--max-nodes",
                type=click.IntRange(min=1),
                metavar="N",
                help="Refuse to lay out graphs with more than N nodes (Graphviz would take minutes).",
            ),
            click.option(
                "--max-frames",
                type=click.IntRange(min=1),
                metavar="N",
                help="Refuse to draw step frames (--steps, .html) for passes of more than N steps.",
            ),
            click.option(
                "--view",
                type=LibraryChoice(RENDER_OPTIONS, "VIEWS"),
                help="full: every backward node; modules: one box per nn.Module (needs module tags: gradtrace "
                "run records them, tracer.record(modules=True) too); auto (default): modules when the graph has more "
                "than --max-nodes.",
            ),
            click.option(
                "--depth",
                type=click.IntRange(min=0),
                metavar="N",
                help="Module view: one box per module N levels below the model (0: the whole model). "
                "[default: the depth of its repeated blocks]",
            ),
            click.option(
                "--focus",
                metavar="NAME",
                help="Draw only the paths from the seed to this leaf (x, model.0.weight) or module (model.layers.3).",
            ),
            click.option(
                "--repeats",
                type=LibraryChoice(RENDER_OPTIONS, "REPEATS"),
                help="Module view: repeated blocks (a transformer's layers) as one box (compact, default) or expand.",
            ),
            click.option(
                "--profile/--no-profile",
                default=None,
                help="SVG: put the gradient-norm profile chart beside the graph (the module .html page always has it).",
            ),
            click.option(
                "--colour-range",
                type=(float, float),
                default=None,
                metavar="LOW HIGH",
                help="Fix the colour scale to gradient norms from LOW to HIGH, so that pictures compared side by side "
                "colour a norm alike. [default: each pass's smallest and largest norm]",
            ),
        ],
        f,
    )


def report_options(f: F) -> F:
    """-q/--quiet and --json."""
    return _apply(
        [
            click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors."),
            click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout, for machines."),
        ],
        f,
    )


def pass_option(f: F) -> F:
    """--pass: which passes to keep (repeatable)."""
    return click.option(
        "--pass",
        "passes",
        type=PassesType(),
        multiple=True,
        help="Keep only these passes: a number (3), a range (2-5), an open range (4-) or a comma list; "
        "repeatable. Default: every pass.",
    )(f)


def format_option(f: F) -> F:
    """--format: which files to write per pass."""
    return click.option(
        "-f",
        "--format",
        "formats",
        multiple=True,
        metavar="LIST",
        help=f"Formats to write per pass, comma-separated or repeated: {', '.join(FORMATS)}. [default: svg,json]",
    )(f)


def picked(values: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """The options among `names` the user gave (None means 'not given': the library's default applies)."""
    return {k: values[k] for k in names if values.get(k) is not None}


def drawing_from(values: dict[str, Any]) -> dict[str, Any]:
    """The drawing keywords for Trace.save from the parsed options."""
    return picked(values, drawing_option_names())
