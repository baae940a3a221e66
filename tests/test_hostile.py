"""Hostile input to the trace loader: fuzzed text and bytes, malformed JSON, wrong versions, huge numbers, deep
nesting and random mutations of valid traces give a Trace or a clear TraceFormatError / FileNotFoundError,
never another exception and never a hang; and loading never executes code."""

from __future__ import annotations

import ast
import contextlib
import copy
import dataclasses
import json
import re
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import tracer
import tracer.render.stepper
from tests.cli_helpers import invoke
from tests.fuzzing import TALLY, fuzz_settings
from tests.render_helpers import check_html
from tracer import TraceFormatError
from tracer.model import serial
from tracer.render import escape

HANG_GUARD_SECONDS = 60  # not a timing assertion: only turns a hang into a failure instead of a stuck run


# --------------------------------------------------------------------------- guards: no code runs, no hang

# Audit events that mean code is being loaded or run, or a process started (PEP 578).
_CODE_EVENTS = frozenset(
    {
        "exec",
        "compile",
        "import",
        "pickle.find_class",
        "marshal.loads",
        "code.__new__",
        "os.system",
        "os.exec",
        "os.posix_spawn",
        "subprocess.Popen",
        "ctypes.dlopen",
    }
)
_watch: dict[str, list[str] | None] = {"events": None}


def _audit(event: str, args: tuple[Any, ...]) -> None:
    events = _watch["events"]
    if events is not None and event in _CODE_EVENTS:
        events.append(event)


sys.addaudithook(_audit)  # audit hooks cannot be removed: this one only records while a load is watched


@contextlib.contextmanager
def watched() -> Iterator[None]:
    """Fail if the block runs or loads code, or takes longer than HANG_GUARD_SECONDS."""

    def hung(signum: int, frame: Any) -> None:
        raise TimeoutError(f"loading took more than {HANG_GUARD_SECONDS} s: a hang")

    events: list[str] = []
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(HANG_GUARD_SECONDS)
    _watch["events"] = events
    try:
        yield
    finally:
        _watch["events"] = None
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert events == [], f"loading a trace ran code: audit events {sorted(set(events))}"


def load_or_refuse(source: Any) -> tracer.Trace | None:
    """Load hostile input: a Trace (which must then be fully usable) or one of our clear errors."""
    TALLY["loader inputs fuzzed (a Trace or a clear error, no code run)"] += 1
    try:
        with watched():
            trace = tracer.load(source)
    except (TraceFormatError, FileNotFoundError) as exc:
        message = str(exc)
        assert message and "\n" not in message and len(message) < 2000, message
        return None
    usable(trace)
    return trace


def usable(trace: tracer.Trace) -> None:
    """What every consumer of a loaded trace relies on works: JSON, repr, the graph view, the analysis
    summary and the DOT text (drawing it as SVG and HTML: test_odd_traces_render_and_parse)."""
    text = trace.to_json()
    assert tracer.load(text).to_json() == text
    repr(trace)
    trace.graph  # noqa: B018 - builds the networkx view
    assert trace.summary()
    assert trace.to_dot().startswith("digraph")


# --------------------------------------------------------------------------- valid traces to mutate


def _valid_traces() -> list[str]:
    x = torch.tensor([1.0, 0.0], requires_grad=True)
    w = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    z = torch.tensor([1 + 1j], requires_grad=True)
    e = torch.zeros(0, 2, requires_grad=True)
    texts = [
        tracer.trace((w @ x).sin(), torch.tensor([1.0, -1.0])).to_json(),
        tracer.trace((x.log() * 1).sum()).to_json(),  # -inf and NaN
        tracer.trace(z.abs().sum() + e.sum()).to_json(),  # complex and zero-size
    ]
    with tracer.record() as rec:
        torch.autograd.grad((x * w).sum(), [x], torch.tensor(2.0))
    texts.append(rec.traces[0].to_json())
    return texts


VALID = _valid_traces()
# Loading once fills the loader's cache of the model's type hints, which typing builds with eval() of
# gradtrace's own annotations (never of the input): after this, a load that compiles or execs anything fails.
for _text in VALID:
    assert tracer.load(_text).to_json() == _text

JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**62, max_value=10**40) | st.integers(min_value=-(10**40), max_value=-(2**62)),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "", "<script>", "backward", "float32", "__reduce__"]),
    st.text(max_size=20),
)
JSON = st.recursive(
    JSON_LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _paths(doc: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, (*path, i))


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        doc = doc[p]
    return doc


@st.composite
def mutated_documents(draw: st.DrawFn) -> str:
    """A valid trace with 1-3 random edits: values replaced, keys dropped or added, lists grown or cut."""
    doc = json.loads(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(doc))
        path = draw(st.sampled_from(paths[1:]))
        parent, key = _at(doc, path[:-1]), path[-1]
        edit = draw(st.sampled_from(["replace", "drop", "add", "duplicate", "wrap", "nest"]))
        if edit == "replace":
            parent[key] = draw(JSON)
        elif edit == "drop":
            del parent[key]
        elif edit == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(JSON)
        elif edit == "duplicate" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        elif edit == "wrap":
            parent[key] = [parent[key]]
        elif edit == "nest":
            parent[key] = json.loads("[" * 300 + "0" + "]" * 300)
    return json.dumps(doc)


HOSTILE_NAMES = st.sampled_from(
    ["<b>x</b>", "a & b", 'say "hi"', "it's", "two\nlines", "</script><script>alert(1)</script>"]
)


@st.composite
def retyped_documents(draw: st.DrawFn) -> str:
    """A valid trace with 1-4 values replaced by others of the same JSON type: the kind of edit that often
    still loads, giving odd but well-formed traces (hostile names, other edge targets, flipped flags)."""
    doc = json.loads(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from([p for p in _paths(doc) if p and not isinstance(_at(doc, p), dict | list)]))
        parent, key, old = _at(doc, path[:-1]), path[-1], _at(doc, path)
        if isinstance(old, bool):
            parent[key] = not old
        elif isinstance(old, int):
            parent[key] = draw(st.integers(-2, 12))
        elif isinstance(old, float):
            parent[key] = draw(st.floats() | st.sampled_from(["NaN", "Infinity", "-Infinity"]))
        elif isinstance(old, str) and old not in ("NaN", "Infinity", "-Infinity"):
            parent[key] = draw(HOSTILE_NAMES | st.text(max_size=12))
    return json.dumps(doc)


@st.composite
def corrupted_texts(draw: st.DrawFn) -> str:
    """A valid trace's text with characters deleted, inserted or replaced, or cut short."""
    text = draw(st.sampled_from(VALID))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        edit = draw(st.sampled_from(["delete", "insert", "cut"]))
        if edit == "delete":
            text = text[:i] + text[i + draw(st.integers(1, 8)) :]
        elif edit == "insert":
            text = text[:i] + draw(st.sampled_from(list('{}[]",:0-e.9 \\\x00\ufeffNaN'))) + text[i:]
        else:
            text = text[:i]
    return text


# --------------------------------------------------------------------------- fuzzing


@fuzz_settings(150)
@given(mutated_documents())
def test_mutated_valid_traces(text: str) -> None:
    load_or_refuse(text)


@fuzz_settings(200)
@given(retyped_documents())
def test_retyped_valid_traces(text: str) -> None:
    if load_or_refuse(text) is not None:
        TALLY["odd but well-formed traces loaded and used"] += 1


@fuzz_settings(150)
@given(corrupted_texts())
def test_corrupted_trace_text(text: str) -> None:
    if load_or_refuse(text) is None:
        return
    TALLY["corrupted texts that still loaded (harmless edits)"] += 1


@fuzz_settings(100)
@given(JSON, st.sampled_from(["document", "trace", "version"]))
def test_random_json(value: Any, where: str) -> None:
    if where == "document":
        document = value
    elif where == "trace":
        document = {"format": serial.FORMAT, "version": serial.VERSION, "trace": value}
    else:
        document = {"format": serial.FORMAT, "version": value, "trace": {}}
    assert load_or_refuse(json.dumps(document)) is None


@fuzz_settings(100)
@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b"{" + b))
def test_random_text_and_bytes(source: str | bytes) -> None:
    assert load_or_refuse(source) is None or isinstance(source, bytes)


# --------------------------------------------------------------------------- named hostile cases


def _edit(text: str, change: Any) -> str:
    doc = json.loads(text)
    change(doc)
    return json.dumps(doc)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("a" * 5000, "no trace file at 'aaaa"),  # longer than a file name may be
        ("\ufeff" + VALID[0][:100], "invalid JSON"),  # a byte-order mark, then JSON cut short
        ("x\x00y", "no trace file at"),
        (_edit(VALID[0], lambda d: d["trace"]["seeds"][0]["v"].update(shape=[10**4000] * 3)), "out of range"),
        (_edit(VALID[0], lambda d: d["trace"]["seeds"][0]["v"].update(shape=[2**62] * 300)), "more elements"),
        (_edit(VALID[0], lambda d: d["trace"]["nodes"][0].update(id=10**4000)), "out of range"),
        (_edit(VALID[0], lambda d: d["trace"]["seeds"][0]["v"]["stats"].update(norm=10**400)), "out of range"),
        (
            _edit(
                VALID[0],
                lambda d: d["trace"]["nodes"][0].update(
                    jacobian={"rows": [[2]], "cols": [[2]], "matrix": [[1.0], [1.0, 2.0]]}
                ),
            ),
            "matrix",
        ),
        ('{"format": "gradtrace.trace", "version": 1, "trace": ' + "[" * 50000 + "]" * 50000 + "}", "nested"),
        ('{"format": "gradtrace.trace", "version": "1", "trace": {}}', "unsupported trace version '1'"),
        ('{"format": "gradtrace.trace", "version": 1.0, "trace": {}}', "unsupported trace version 1.0"),
        ('{"format": "gradtrace.trace", "version": true, "trace": {}}', "unsupported trace version True"),
        ('{"format": "gradtrace.trace", "version": 2, "trace": {}}', "unsupported trace version 2"),
        ("1" * 5000, "no trace file"),
        ("/dev/zero", "not a regular file"),  # would never stop reading
        (_edit(VALID[0], lambda d: d["trace"]["seeds"][0]["v"]["stats"].update(norm=-1.0)), "norm cannot be negative"),
        (_edit(VALID[0], lambda d: d["trace"]["seeds"][0]["v"]["stats"].update(zeros=1.5)), "zeros is a share"),
        (_edit(VALID[0], lambda d: d["trace"]["seeds"][0]["v"]["stats"].update(nan=-2)), "counts cannot be negative"),
        (_edit(VALID[0], lambda d: d["trace"]["nodes"][1]["edges"][0].update(target=1)), "form a cycle"),
        (
            _edit(VALID[0], lambda d: d["trace"]["nodes"][1]["edges"][0].update(target=4)),
            "to node 4, but",
        ),
        (_edit(VALID[0], lambda d: d["trace"]["leaves"]["x"].update(shape=[3])), "the leaf's shape is [3]"),
        (_edit(VALID[3], lambda d: d["trace"]["seeds"][0].update(target=3)), "gradient to node 3, but"),
        ("[" + "1e999," * 10 + "1]", "not a gradtrace trace"),
    ],
    ids=[
        "long-name",
        "bom",
        "nul",
        "huge-dims",
        "numel-overflow",
        "huge-id",
        "int-beyond-float",
        "ragged-jacobian",
        "deep",
        "version-str",
        "version-float",
        "version-bool",
        "version-2",
        "digits",
        "dev-zero",
        "negative-norm",
        "zeros-share",
        "negative-count",
        "cycle",
        "edge-shape",
        "leaf-shape",
        "seed-into-unexecuted-slot",
        "1e999",
    ],
)
def test_named_hostile_inputs(source: str, message: str) -> None:
    TALLY["loader inputs fuzzed (a Trace or a clear error, no code run)"] += 1
    with watched(), pytest.raises((TraceFormatError, FileNotFoundError)) as info:
        tracer.load(source)
    assert message in str(info.value)
    assert len(str(info.value)) < 400  # a clear one-liner, not the whole input echoed back


def test_a_byte_order_mark_is_accepted_like_in_bytes(tmp_path: Path) -> None:
    assert tracer.load("\ufeff" + VALID[0]).to_json() == VALID[0]
    assert tracer.load(b"\xef\xbb\xbf" + VALID[0].encode()).to_json() == VALID[0]
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + VALID[0].encode())
    assert tracer.load(path).to_json() == VALID[0]


def test_a_pickle_file_is_refused_not_unpickled(tmp_path: Path) -> None:
    path = tmp_path / "trace.json"
    torch.save({"format": "gradtrace.trace"}, path)  # a pickle (zip) archive with a .json name
    with watched(), pytest.raises(TraceFormatError, match="invalid JSON"):
        tracer.load(path)


def test_the_loader_has_no_way_to_run_code() -> None:
    """Beyond the audit hook: the loader's source names nothing that evaluates or unpickles."""
    tree = ast.parse(Path(serial.__file__).read_text())
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    imported = {
        a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom) for a in n.names
    }
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not names & {"eval", "exec", "compile", "__import__", "import_module", "literal_eval"}
    assert not imported & {"pickle", "marshal", "shelve", "yaml", "importlib", "torch", "dill", "subprocess"}


# --------------------------------------------------------------------------- hostile text in pictures and pages

EVIL = "<b>x</b> & \"q\" 'a'\n</script><script>alert(1)</script>"
_NETWORK = re.compile(r"^\s*(https?:|ftp:|//|data:text/html)", re.IGNORECASE)
_CSS_FETCH = re.compile(r"@import|url\(\s*['\"]?(?!#)", re.IGNORECASE)


class PageScan(HTMLParser):
    """Everything a browser would act on: tags, text, and attribute values that could fetch something."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.text: list[str] = []
        self.fetches: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._in_style = tag == "style"
        for name, value in attrs:
            value = value or ""
            fetching = name in ("src", "href", "xlink:href", "action", "formaction", "poster", "data", "srcset")
            if (fetching and _NETWORK.search(value)) or (name == "style" and _CSS_FETCH.search(value)):
                self.fetches.append(f"<{tag} {name}={value!r}>")
            if tag == "link" and name == "href":
                self.fetches.append(f"<link href={value!r}>")

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_style and _CSS_FETCH.search(data):
            self.fetches.append(f"<style> {data[:60]!r}")


def scan_page(page: str) -> PageScan:
    """Parse an HTML page strictly (every element closed in order) and check it fetches nothing."""
    balance = check_html(page)
    assert not balance.errors and not balance.stack, (balance.errors, balance.stack)
    scan = PageScan()
    scan.feed(page)
    scan.close()
    assert scan.fetches == [], f"the page loads from the network: {scan.fetches}"
    return scan


def scan_svg(svg: str) -> str:
    """Parse SVG as XML; returns all its text (labels and tooltips), and checks it references nothing outside."""
    root = ET.fromstring(svg)
    for element in root.iter():
        for name, value in element.attrib.items():
            if name.endswith("href") and _NETWORK.search(value):
                raise AssertionError(f"the SVG links to {value!r}")
    return "\n".join(t for t in root.itertext())


def _evil_function(fails: bool) -> Any:
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x * 2

    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        if fails:
            raise ValueError(EVIL)
        return g * 2

    return type(
        EVIL, (torch.autograd.Function,), {"forward": staticmethod(forward), "backward": staticmethod(backward)}
    )


def hostile_traces() -> list[tracer.Trace]:
    """Real passes with EVIL as a leaf name, the label, a custom Function's class name, the source file's
    name and an exception message (in an incomplete pass)."""
    source = (
        "x = torch.tensor([1.0, 2.0], requires_grad=True)\n"
        "with tracer.record(label=EVIL, names={EVIL: x}) as rec:\n"
        "    (Good.apply(x) * x).sum().backward()\n"
        "    try:\n"
        "        Bad.apply(x).sum().backward()\n"
        "    except ValueError:\n"
        "        pass\n"
    )
    namespace: dict[str, Any] = {"torch": torch, "tracer": tracer, "EVIL": EVIL}
    namespace.update(Good=_evil_function(fails=False), Bad=_evil_function(fails=True))
    exec(compile(source, f"{EVIL}.py", "exec"), namespace)  # the file name is hostile too
    traces: list[tracer.Trace] = namespace["rec"].traces
    assert [t.complete for t in traces] == [True, False]
    return traces


@pytest.mark.graphviz
def test_hostile_text_is_shown_literally_in_dot_svg_and_html(tmp_path: Path) -> None:
    literal = escape.visible(EVIL)  # the newline shows as \n
    for trace in hostile_traces():
        dot_text = trace.to_dot()
        laid_out = subprocess.run(["dot", "-Tsvg"], input=dot_text.encode(), capture_output=True, check=False)
        assert laid_out.returncode == 0 and laid_out.stderr == b"", laid_out.stderr  # Graphviz reads it cleanly

        shown = scan_svg(trace.svg())
        assert literal in shown  # the leaf name / label / class name, literally
        if not trace.complete:
            assert escape.visible(EVIL.splitlines()[0]) in shown  # the exception's first line, in the note

        baseline = scan_page(tracer.render.stepper.page(_benign()))
        page = tracer.render.stepper.page(trace)
        scan = scan_page(page)
        assert scan.tags.count("script") == baseline.tags.count("script")  # no script of EVIL's runs
        # EVIL's markup arrived as text (the whole name, or the exception's first line in a caption)
        assert any(literal in t or escape.visible(EVIL.splitlines()[0]) in t for t in scan.text)
        TALLY["hostile-text pictures and pages checked (DOT, SVG, HTML)"] += 1


def _benign() -> tracer.Trace:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    return tracer.trace((x * x).sum())


@pytest.mark.graphviz
def test_the_cli_output_folder_is_offline_and_escaped(tmp_path: Path) -> None:
    script = tmp_path / "we<i>rd & 'odd'.py"
    script.write_text(
        "import torch\n"
        f"EVIL = {EVIL!r}\n"
        "Evil = type(EVIL, (torch.autograd.Function,), {\n"
        "    'forward': staticmethod(lambda ctx, x: x * 2), 'backward': staticmethod(lambda ctx, g: g * 2)})\n"
        "x = torch.tensor([1.0, 2.0], requires_grad=True)\n"
        "Evil.apply(x).sum().backward()\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    result = invoke("run", "-q", "-f", "svg,html,json,dot", "-o", out, script)
    assert result.exit_code == 0, result.output
    pages = sorted(out.glob("*.html"))
    pictures = sorted(p for p in out.glob("*.svg") if not p.name.endswith(".timeline.svg"))
    assert pages and pictures
    for path in pages:
        scan = scan_page(path.read_text(encoding="utf-8"))
        assert "alert(1)" not in "".join(scan.tags)
    for path in pictures:
        assert escape.visible(EVIL) in scan_svg(path.read_text(encoding="utf-8"))
    # the overview of every pass (gradient norms over time) names the script, escaped like the rest
    assert "we<i>rd & 'odd'.py: gradient norm" in scan_svg((out / "we<i>rd & 'odd'.timeline.svg").read_text())
    index = scan_page((out / "index.html").read_text(encoding="utf-8"))
    assert any("we<i>rd & 'odd'" in t for t in index.text)  # the script's name, literally
    TALLY["hostile-text pictures and pages checked (DOT, SVG, HTML)"] += len(pages) + len(pictures)


@fuzz_settings(25)
@given(retyped_documents())
def test_odd_traces_render_and_parse(text: str) -> None:
    """Whatever loads also draws: DOT always, SVG and the HTML page parse, with nothing from the network."""
    trace = load_or_refuse(text)
    if trace is None:
        return
    trace.to_dot()
    try:
        svg = trace.svg()
    except tracer.GraphvizMissingError:  # pragma: no cover - the graphviz marker's environment
        pytest.skip("Graphviz's dot is not installed")
    scan_svg(svg)
    if trace.steps:
        scan_page(tracer.render.stepper.page(trace))
    TALLY["odd traces drawn as SVG and HTML, parsed"] += 1


@pytest.mark.graphviz
def test_empty_names_draw() -> None:
    """Found by test_odd_traces_render_and_parse: an empty name (names={'': x}, or a node named '' in an edited
    trace) became an empty bold element <B></B>, which Graphviz rejects, so the picture could not be drawn."""
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    trace = tracer.trace((x * x).sum(), names={"": x})
    assert "" in trace.leaves
    scan_svg(trace.svg())
    unnamed = dataclasses.replace(trace, nodes=(dataclasses.replace(trace.nodes[0], name=""), *trace.nodes[1:]))
    scan_svg(unnamed.svg())
    scan_page(tracer.render.stepper.page(unnamed))


def test_a_norm_at_the_float_limit_draws() -> None:
    """Found by test_odd_traces_render_and_parse: the legend's ticks are 10**log10(norm), and for a norm at
    float64's maximum that power overflows by rounding (OverflowError); a real gradient can be that large."""
    x = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    c = torch.tensor([sys.float_info.max, 1.0], dtype=torch.float64)
    trace = tracer.trace((x * c).sum())
    grad = trace.leaves["x"].grad
    assert grad is not None and grad.stats is not None and grad.stats.norm == sys.float_info.max
    assert trace.to_dot().startswith("digraph")
