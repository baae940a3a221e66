"""The dashed "no grad" stubs of a pass recorded with forward=True carry the cause and the user's line that cut
them: in the Trace, its JSON, the SVG's stub text and tooltip; without forward=True the picture is unchanged."""

from __future__ import annotations

import dataclasses
import json
import runpy
import textwrap
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch

import tracer
from tracer.model.records import Trace
from tracer.model.why_records import Cause, StubCause

SVG = "{http://www.w3.org/2000/svg}"
HEAD = "import torch\nimport tracer\ntorch.manual_seed(0)\n"


def run(tmp_path: Path, body: str, *, forward: bool = True) -> tuple[Trace, int, dict[str, torch.Tensor]]:
    """Run `body` (which opens `tracer.record(forward=FORWARD) as rec`) as a user's script: its first trace, the
    line marked `# <-`, and the leaves' gradients."""
    source = HEAD + f"FORWARD = {forward}\n" + textwrap.dedent(body)
    script = tmp_path / "user_script.py"
    script.write_text(source)
    marked = [n for n, text in enumerate(source.splitlines(), 1) if text.rstrip().endswith("# <-")]
    assert len(marked) == 1, "mark the line that cuts the path with `# <-`"
    with warnings.catch_warnings():  # .item() on a tensor that requires grad makes torch warn
        warnings.simplefilter("ignore")
        names = runpy.run_path(str(script))
    grads = {
        k: v.grad.clone() for k, v in names.items() if isinstance(v, torch.Tensor) and v.is_leaf and v.grad is not None
    }
    return names["rec"].traces[0], marked[0], grads


DETACH = """
w = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
u = torch.tensor([0.5, 1.5, -1.0], requires_grad=True)
x = torch.tensor([2.0, 1.0, 4.0])
with tracer.record(forward=FORWARD) as rec:
    h = torch.tanh(u * x)
    target = h.detach()  # <-
    loss = ((w * target) ** 2).sum()
    loss.backward()
"""

NO_GRAD = """
w = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
u = torch.tensor([0.5, 1.5, -1.0], requires_grad=True)
with tracer.record(forward=FORWARD) as rec:
    with torch.no_grad():
        scale = u.exp() + 1  # <-
    loss = (w * scale).sum()
    loss.backward()
"""

OTHERS = {
    ".data": (
        """
        w = torch.tensor([1.0, -2.0], requires_grad=True)
        u = torch.tensor([0.5, 1.5], requires_grad=True)
        with tracer.record(forward=FORWARD) as rec:
            v = u.data  # <-
            loss = (w * v).sum()
            loss.backward()
        """,
        Cause.DATA,
        ".data",
    ),
    ".item() round trip": (
        """
        w = torch.tensor([1.0, -2.0], requires_grad=True)
        u = torch.tensor([0.5, 1.5], requires_grad=True)
        with tracer.record(forward=FORWARD) as rec:
            m = u.sum().item()  # <-
            loss = (w * torch.tensor([m, 2 * m])).sum()
            loss.backward()
        """,
        Cause.VALUES,
        ".item() round trip",
    ),
    "argmax": (
        """
        w = torch.tensor([1.0, -2.0, 0.5], requires_grad=True)
        u = torch.tensor([0.5, 1.5, 0.2], requires_grad=True)
        with tracer.record(forward=FORWARD) as rec:
            k = u.argmax()  # <-
            loss = (w * k).sum()
            loss.backward()
        """,
        Cause.INTEGER,
        "integer op argmax",
    ),
    "re-created tensor": (
        """
        w = torch.tensor([1.0, -2.0], requires_grad=True)
        u = torch.tensor([0.5, 1.5], requires_grad=True)
        with tracer.record(forward=FORWARD) as rec:
            again = torch.tensor(u * 2)  # <-
            loss = (w * again).sum()
            loss.backward()
        """,
        Cause.RECREATED,
        "re-created by tensor(...)",
    ),
    "constant": (
        """
        w = torch.tensor([1.0, -2.0], requires_grad=True)
        with tracer.record(forward=FORWARD) as rec:
            c = torch.full((2,), 3.0)  # <-
            loss = (w * c).sum()
            loss.backward()
        """,
        Cause.FROZEN,
        "requires_grad=False",
    ),
    "frozen": (
        """
        w = torch.tensor([1.0, -2.0], requires_grad=True)
        p = torch.tensor([0.5, 1.5], requires_grad=True)
        with tracer.record(forward=FORWARD) as rec:
            p.requires_grad_(False)  # <-
            loss = (w * p).sum()
            loss.backward()
        """,
        Cause.FROZEN,
        ".requires_grad_(False)",
    ),
}


def only_stub(trace: Trace) -> StubCause:
    cut = [(n.id, k) for n, k, e, _ in trace.edges() if e.target is None]
    assert len(cut) == 1, cut
    stub = trace.stub(*cut[0])
    assert stub is not None, trace.stubs
    return stub


def stub_groups(svg: str) -> list[ET.Element]:
    root = ET.fromstring(svg)
    return [g for g in root.iter(f"{SVG}g") if "gt-const" in (g.get("class") or "").split()]


def stub_text(group: ET.Element) -> tuple[str, str]:
    """(the stub's visible text, its tooltip)."""
    shown = " ".join(t.text or "" for t in group.iter(f"{SVG}text"))
    title = group.find(f"{SVG}title")
    return shown, (title.text or "") if title is not None else ""


@pytest.mark.parametrize(
    ("body", "cause", "cut"), [(DETACH, Cause.DETACH, ".detach()"), (NO_GRAD, Cause.NO_GRAD, "under torch.no_grad()")]
)
def test_the_picture_s_stub_names_the_cut_and_its_line(
    hooks: str, tmp_path: Path, body: str, cause: Cause, cut: str
) -> None:
    trace, line, grads = run(tmp_path, body)
    stub = only_stub(trace)
    assert (stub.cause, stub.line, stub.file) == (cause, line, str(tmp_path / "user_script.py"))
    assert cut in stub.cut
    groups = stub_groups(trace.svg())
    assert len(groups) == 1
    shown, tooltip = stub_text(groups[0])
    assert cut in shown and f"user_script.py:{line}" in shown, shown
    assert cut in tooltip and f"user_script.py:{line}" in tooltip and cause.value in tooltip, tooltip
    # the recorded gradient is torch's, and tracing with the forward record changed none of them
    _, _, plain = run(tmp_path, body, forward=False)
    assert grads.keys() == plain.keys() == {"w"}  # u's path is cut
    for name, g in grads.items():
        assert torch.equal(g, plain[name])
        recorded = trace.leaves[name].grad
        assert recorded is not None
        assert torch.equal(torch.as_tensor(recorded.values), g)


@pytest.mark.parametrize("case", list(OTHERS))
def test_every_cut_cause_is_named_with_its_line(tmp_path: Path, case: str) -> None:
    body, cause, cut = OTHERS[case]
    trace, line, _ = run(tmp_path, body)
    stub = only_stub(trace)
    assert (stub.cause, stub.line) == (cause, line), stub
    assert cut in stub.cut, stub
    shown, _ = stub_text(stub_groups(trace.svg())[0])
    assert f"user_script.py:{line}" in shown


def test_json_round_trip_keeps_the_causes_and_old_files_still_load(tmp_path: Path) -> None:
    trace, line, _ = run(tmp_path, DETACH)
    back = tracer.load(trace.to_json())
    assert back.stubs == trace.stubs and back.stubs[0].line == line
    assert back.to_dot() == trace.to_dot()
    document = json.loads(trace.to_json())
    del document["trace"]["stubs"]  # a file written before stubs were recorded
    old = tracer.load(json.dumps(document))
    assert old.stubs == () and "constant or detached" in old.to_dot()


def test_without_forward_the_picture_and_json_are_as_before(tmp_path: Path) -> None:
    with_forward, _, _ = run(tmp_path, DETACH)
    plain, _, _ = run(tmp_path, DETACH, forward=False)
    assert plain.stubs == ()
    assert "stubs" not in json.loads(plain.to_json())["trace"]
    # the same pass: its DOT without the causes is exactly the DOT recorded without forward=True
    assert dataclasses.replace(with_forward, stubs=()).to_dot() == plain.to_dot()
    assert "no grad: constant or detached" in plain.to_dot()
    assert "no grad: constant or detached" not in with_forward.to_dot()
    shown, tooltip = stub_text(stub_groups(plain.svg())[0])
    assert shown == "no grad: constant or detached" and "the path is cut here" in tooltip


def test_the_stub_cause_record_is_documented() -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "trace-format.md").read_text(encoding="utf-8")
    section = text.split("## StubCause", 1)[1].split("\n## ", 1)[0]
    for f in dataclasses.fields(StubCause):
        assert f"| `{f.name}` |" in section, f.name
