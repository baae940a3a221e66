"""Names that are not XML text reach every output valid and visible.

Issue 16, item 5: a leaf, module, label, custom Function or file name (or an exception's message) may hold any
Python str: C0/C1 controls, lone surrogates (a file name that was not UTF-8), noncharacters, bidi overrides,
markup. Every output must stay well-formed (XML for SVG and the charts, balanced HTML with XML-parseable inline
SVG for the pages, DOT that Graphviz reads, UTF-8 everywhere) and show such characters as escapes
(tracer/render/escape.visible); the JSON keeps the exact strings and loads back equal.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import tracer
from tests.fuzzing import TALLY, fuzz_settings
from tests.render_helpers import check_html
from tracer.display.notebook import mimebundle, stepper_html
from tracer.gallery.entries import Entry, Pass, Script, ShownError, Topic
from tracer.gallery.markdown import readme
from tracer.gallery.page import EntryPage, PassFiles, index_html
from tracer.render import escape, stepper

pytestmark = pytest.mark.graphviz

C0 = "".join(map(chr, range(0x20)))
C1 = "\x7f" + "".join(map(chr, range(0x80, 0xA0)))
HOSTILE = [
    "\x1b[31mx\x1b[0m",
    "a\x00b",
    "a\x08b",
    "a\x0cb",
    "c0:" + C0,
    "c1:" + C1,
    "\ud800",
    "lo\udfff",
    "file\udcff",  # a non-UTF-8 byte read with surrogateescape
    "a\ufffe",
    "a\uffff",
    "n\ufdd0\U0001fffe\U0010ffff",
    "bidi\u202eevil\u202c\u2066\u2069\u200f",
    "<>&\"'",
    "]]>",
    "</script><script>alert(1)</script>",
    "<!-- -->",
    "\\N\\G\\\\",
    "x" * 300,
    "é😀\u00a0中",
]
# What XML 1.0 cannot hold, and what we promise never to show raw (see escape.visible).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_RAW = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff\u202a-\u202e\u2066-\u2069]"
)


def _well_formed_text(text: str, what: str) -> None:
    text.encode("utf-8")  # strict: no lone surrogate
    found = _NOT_XML.search(text)
    assert found is None, f"{what} holds {found.group(0)!r}"


def xml_ok(svg: str, what: str) -> str:
    _well_formed_text(svg, what)
    root = ET.fromstring(svg.encode("utf-8"))
    return "\n".join(root.itertext())


def html_ok(page: str, what: str) -> str:
    """Balanced HTML whose inline SVG pictures each parse as XML; returns all the text."""
    _well_formed_text(page, what)
    check_html(page)
    shown = [xml_ok(m.group(0), f"an SVG in {what}") for m in re.finditer(r"<svg\b.*?</svg>", page, re.DOTALL)]
    found = _RAW.search(page)
    assert found is None, f"{what} shows {found.group(0)!r} raw"
    return page + "\n".join(shown)


def dot_ok(dot: str) -> None:
    _well_formed_text(dot, "DOT")
    run = subprocess.run(["dot", "-Tsvg"], input=dot.encode("utf-8"), capture_output=True, check=False)
    assert run.returncode == 0 and b"Error" not in run.stderr, run.stderr.decode(errors="replace")


def json_ok(trace: tracer.Trace, tmp_path: Path) -> None:
    text = trace.to_json()
    text.encode("utf-8")
    assert tracer.load(text) == trace  # the exact strings come back
    path = trace.save(tmp_path / "t.json")
    assert tracer.load(path) == trace


def every_output(trace: tracer.Trace, tmp_path: Path) -> str:
    """Draw and write `trace` every way it can be shown; check each; return all the text shown."""
    dot_ok(trace.to_dot())
    shown = [xml_ok(trace.svg(), "svg()"), xml_ok(trace.svg(profile=True), "svg(profile=True)")]
    shown.append(xml_ok(tracer.health(trace).chart(), "health chart"))
    assert _RAW.search("".join(shown)) is None
    if trace.steps:
        shown.append(html_ok(stepper.page(trace), "the stepper page"))
        shown.append(xml_ok(mimebundle(trace)["image/svg+xml"], "the notebook's SVG"))
        shown.append(html_ok(stepper_html(trace, {}, None), "the notebook's stepper"))
    json_ok(trace, tmp_path)
    TALLY["odd strings through every output (DOT, SVG, charts, pages, JSON)"] += 1
    return "\n".join(shown)


def _names_trace(names: list[str]) -> tracer.Trace:
    leaves = {name: torch.tensor([1.0, float(i)], requires_grad=True) for i, name in enumerate(names)}
    y = sum((x * x).sum() for x in leaves.values())
    return tracer.trace(y, names=leaves)  # type: ignore[arg-type]


@pytest.mark.parametrize("names", [HOSTILE[:7], HOSTILE[7:14], HOSTILE[14:]], ids=["controls", "unicode", "markup"])
def test_odd_leaf_names_in_every_output(names: list[str], tmp_path: Path) -> None:
    trace = _names_trace(names)
    assert set(trace.leaves) == set(names)
    shown = every_output(trace, tmp_path)
    for name in names:
        assert escape.visible(name) in shown or escape.page_text(escape.visible(name)) in shown, name


def test_the_issue_examples() -> None:
    """The reports of issue 16 item 5, as they were written."""
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    for name in ["\x1b[31mx\x1b[0m", "\x00", "\x08", "\x0c", "\ud800", "\ufffe"]:
        x.grad = None
        t = tracer.trace((x * 2).sum(), names={name: x})
        ET.fromstring(t.svg())
        ET.fromstring(t.svg(profile=True))
        ET.fromstring(tracer.health(t).chart())
        assert tracer.load(t.to_json()) == t
        t.to_json().encode("utf-8")


def _function_named(name: str) -> Any:
    body = {
        "forward": staticmethod(lambda ctx, x: x * 2),
        "backward": staticmethod(lambda ctx, g: g * 2),
    }
    try:
        return type(name, (torch.autograd.Function,), body)
    except (ValueError, UnicodeEncodeError):  # a class name may hold neither NUL nor a lone surrogate
        safe = name.encode("utf-8", "backslashreplace").decode().replace("\x00", "\\x00")
        return type(safe, (torch.autograd.Function,), body)


def _everywhere(text: str) -> list[tracer.Trace]:
    """One pass with `text` as the label, a leaf's name, a custom Function's class name, a module's name, the
    source file's name, and the message of an exception a later node raised (an incomplete pass)."""
    key = text.replace(".", "_") or "_"
    model = torch.nn.ModuleDict({key: torch.nn.Linear(2, 2)})
    source = (
        "x = torch.tensor([1.0, 2.0], requires_grad=True)\n"
        "with tracer.record(label=TEXT, names={TEXT: x}, model=model) as rec:\n"
        "    y = Fn.apply(model[KEY](x) * x).sum()\n"
        "    y.backward()\n"
        "    try:\n"
        "        Bad.apply(x).sum().backward()\n"
        "    except ValueError:\n"
        "        pass\n"
    )

    def fail(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        raise ValueError(text)

    bad = type("Bad", (torch.autograd.Function,), {"forward": staticmethod(lambda ctx, x: x * 2)})
    bad.backward = staticmethod(fail)  # type: ignore[attr-defined]
    ns: dict[str, Any] = {"torch": torch, "tracer": tracer, "TEXT": text, "KEY": key, "model": model}
    ns.update(Fn=_function_named(text), Bad=bad)
    filename = text.replace("\x00", "\\x00") + ".py"  # compile() refuses NUL in a file name
    exec(compile(source, filename, "exec"), ns)
    traces: list[tracer.Trace] = ns["rec"].traces
    assert [t.complete for t in traces] == [True, False]
    return traces


@pytest.mark.parametrize(
    "text",
    ["\x1b[31mx\x1b[0m\x00\x08\x0c\x85", "\ud800-\udcff", "\ufffe\uffff\u202e", "]]></script>&<'\"", "z" * 245],
    ids=["controls", "surrogates", "nonchars-bidi", "markup", "long"],
)
def test_odd_text_in_every_place_a_user_string_goes(text: str, tmp_path: Path) -> None:
    complete, failed = _everywhere(text)
    shown = every_output(complete, tmp_path)
    assert escape.visible(text) in shown or escape.page_text(escape.visible(text)) in shown
    every_output(failed, tmp_path)
    modules = complete.save(tmp_path / "m.html", view="modules")
    html_ok(modules.read_text(encoding="utf-8"), "the module page")
    for kind in ("svg", "dot", "html"):
        complete.save(tmp_path / f"t.{kind}")  # the files write (strict UTF-8)
    _gallery_ok(complete, text)


def _gallery_ok(trace: tracer.Trace, text: str) -> None:
    topic = Topic(slug="t" + text, title=text, intro=text)
    script = Script(
        topic=topic, path=Path(f"{text}.py"), slug=text, title=text, explanation=(text, f"`{text}`"), code=text
    )
    error = ShownError(type=text, message=f"{text}\n{text}", notes=(text,), line=1, code=text)
    entry = Entry(script=script, passes=(Pass(trace, 1, text),), error=error, drawing={})
    page = EntryPage(
        entry=entry, script=f"{text}.py", passes=(PassFiles(svg=f"{text}.svg", dot="a.dot", stepper=None),)
    )
    html_ok(index_html([page], notebook=f"{text}.ipynb"), "the gallery index")
    md = readme([page], notebook=f"{text}.ipynb")
    md.encode("utf-8")
    assert _RAW.search(md) is None


# Any text at all: every Unicode category, surrogates included.
ODD_TEXT = st.text(
    alphabet=st.characters(codec=None, exclude_categories=()) | st.sampled_from([*C0, *C1, "\ud800", "\ufffe"]),
    min_size=0,
    max_size=12,
)


@fuzz_settings(12)
@given(st.lists(ODD_TEXT, min_size=1, max_size=4, unique=True))
def test_any_names_give_valid_outputs(names: list[str]) -> None:
    trace = _names_trace(names)
    dot_ok(trace.to_dot())
    xml_ok(trace.svg(profile=True), "svg(profile=True)")
    xml_ok(tracer.health(trace).chart(), "health chart")
    html_ok(stepper.page(trace), "the stepper page")
    assert tracer.load(trace.to_json()) == trace
    TALLY["odd strings through every output (DOT, SVG, charts, pages, JSON)"] += 1


def _printable(text: str, what: str) -> None:
    """Text for a terminal: valid UTF-8, nothing that acts on the terminal (an ANSI escape starts with ESC)."""
    text.encode("utf-8")
    found = _RAW.search(text)
    assert found is None, f"{what} prints {found.group(0)!r} raw"


@pytest.mark.parametrize(
    "text",
    ["\x1b[31mx\x1b[0m\x00\x08\x0c\x85", "\ud800-\udcff", "\ufffe\uffff\u202e", "new\nline\ttab"],
    ids=["controls", "surrogates", "nonchars-bidi", "newline"],
)
def test_text_reports_show_odd_names_as_escapes(text: str) -> None:
    """Summary, health, structure, accumulation, diff and paths as text: a name's control characters, ANSI
    escapes and lone surrogates are escapes (the same visible() as the pictures), each name on its own line."""
    for trace in _everywhere(text):
        reports = {
            "summary": trace.summary(),
            "health": str(tracer.health(trace)),
            "structure": str(tracer.structure(trace)),
            "accumulation points": "\n".join(map(str, tracer.accumulation_points(trace))),
            "diff": str(tracer.diff(trace, trace)),
        }
        for what, report in reports.items():
            _printable(report, what)
        assert escape.visible(text) in reports["summary"]
        assert escape.visible(text) in reports["structure"]
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = torch.tensor([3.0], requires_grad=True)
    odd = {text: x, "a\udcff": y}
    t = tracer.trace((x * 0).sum() + (y * float("inf")).sum(), names=odd)
    shown = str(tracer.health(t))
    assert f"leaf {escape.visible(text)}" in shown and "leaf a\\udcff" in shown  # the flags name the leaves
    _printable(shown, "health")
    x.grad = None
    t = tracer.trace((x * x).sum(), names={text: x})
    _printable(str(tracer.decompose(t, text)), "paths")
    for trace_line in t.summary().splitlines():  # a newline in a name does not start a line of its own
        assert not trace_line.startswith(("line", "tab")), trace_line
    TALLY["odd strings through every text report (summary, health, structure, diff, paths)"] += 1


def test_the_command_line_prints_odd_names_as_escapes(tmp_path: Path) -> None:
    """`gradtrace analyze` and `gradtrace run` (real processes, bytes as the terminal gets them): a custom
    Function named with an ANSI escape, a file name with a control character and a byte that is not UTF-8."""
    body = (
        "import torch\n"
        "Evil = type('\\x1b[31mEvil\\x1b[0m\\x07', (torch.autograd.Function,), {\n"
        "    'forward': staticmethod(lambda ctx, x: x * 2), 'backward': staticmethod(lambda ctx, g: g * 2)})\n"
        "x = torch.tensor([1.0, 2.0], requires_grad=True)\n"
        "Evil.apply(x).sum().backward()\n"
    )
    script = tmp_path / os.fsdecode(b"odd\x1b[1m\xff.py")
    script.write_text(body, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    for args in (["analyze", script], ["run", "-f", "dot", "-o", tmp_path / "out", script]):
        done = subprocess.run(
            [sys.executable, "-m", "cli", *map(str, args)], capture_output=True, env=env, check=False, timeout=600
        )
        out, err = done.stdout.decode("utf-8"), done.stderr.decode("utf-8")  # strict: valid UTF-8
        assert done.returncode == 0, err
        _printable(out, f"{args[0]}'s stdout")
        _printable(err, f"{args[0]}'s stderr")
        assert "\\x1b[31mEvil\\x1b[0m\\x07" in out or args[0] == "run", out
        assert "odd\\x1b[1m\\xff.py" in out + err
    TALLY["odd strings printed by the command line (analyze, run)"] += 1
