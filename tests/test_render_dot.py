"""DOT output: golden files for tutorial cases, determinism, structure of what is drawn, options and errors.

Golden files live in tests/golden/<case>.dot. After an intended change of the picture, regenerate them with
    GRADTRACE_UPDATE_GOLDEN=1 pytest tests/test_render_dot.py
and review the diff (git diff tests/golden) before committing.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pytest
import torch

import tracer
from tests.render_helpers import case_trace
from tracer.render.frames import frames
from tracer.render.options import OPTION_NAMES
from tracer.render.shown_precision import mismatch
from tracer.render.style import THEMES

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("GRADTRACE_UPDATE_GOLDEN") == "1"

GOLDEN_CASES = [
    "scalar_default",  # 000: scalar -> scalar, implicit seed
    "item_assign_scalar_to_vector",  # 000: y[0] = x**3 (CopySlices), cut inputs
    "zero_d_100",  # 001: 0-d with a seed of 100, fan-in of 2x and x**2
    "mm_column_default",  # 001: torch.mm with a constant (cut edge)
    "mm_one_hot_row0",  # 002: one-hot seed selects a Jacobian row
    "z_ones",  # 002: x used twice (indexing), accumulation at the leaf
    "x_times_x_ones",  # 003: x * x, two parallel edges into one leaf
    "detach",  # 003: detach() cuts a path
    "many_points_ones_like",  # 004: y = x**2 with v = ones: the diagonal Jacobian
    "matrix_valued_10",  # 004: matrix-valued function, one-hot seed
    "stack_sum_and_squares_2",  # 004: stacked components, float64
]


def _labels(text: str) -> str:
    """The DOT text without tooltips (they hold every detail at more digits)."""
    return re.sub(r'tooltip="(?:[^"\\]|\\.)*"', "", text)


def _check_golden(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.dot"
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no golden file {path.name}: run with GRADTRACE_UPDATE_GOLDEN=1 and review it"
    # At the shown precision: another CPU rounds the last bits differently (tracer/render/shown_precision.py).
    why = mismatch(path.read_text(encoding="utf-8"), text)
    assert why is None, f"{name}: DOT differs from {path.name}: {why}"


@pytest.mark.parametrize("case_id", GOLDEN_CASES)
def test_golden_dot(case_id: str) -> None:
    trace, _, _ = case_trace(case_id)
    _check_golden(case_id, trace.to_dot())


def test_golden_frame_and_options() -> None:
    """A step frame in the dark theme, left to right, without edge labels."""
    trace, _, _ = case_trace("x_times_x_ones")
    _check_golden("x_times_x_ones.step1.dark.lr", trace.to_dot(step=1, theme="dark", direction="LR", edge_labels=False))


@pytest.mark.parametrize("case_id", GOLDEN_CASES)
def test_same_trace_same_bytes(case_id: str) -> None:
    first, _, _ = case_trace(case_id)
    second, _, _ = case_trace(case_id)
    assert first.to_dot() == first.to_dot() == second.to_dot()
    reloaded = tracer.load(first.to_json())
    assert reloaded.to_dot() == first.to_dot()


def test_ids_follow_graph_keys() -> None:
    trace, _, _ = case_trace("mm_column_default")
    text = trace.to_dot()
    declared = set(re.findall(r"^\s+(\w+) \[id=", text, re.M))
    assert {k for k in trace.graph.nodes} <= declared
    assert "legend" in declared
    for source, target in trace.graph.edges:
        assert re.search(rf"^\s+{source} -> {target} \[", text, re.M), (source, target)


def test_no_absolute_paths() -> None:
    trace, _, _ = case_trace("many_points_ones_like")
    here = str(Path(__file__).resolve())
    located = dataclasses.replace(
        trace,
        source=f"{here}:12",
        nodes=tuple(dataclasses.replace(n, source=f"{here}:{n.id}") for n in trace.nodes),
    )
    text = located.to_dot()
    assert here not in text and str(Path(here).parent) not in text
    assert "test_render_dot.py:12" in text and "test_render_dot.py:1" in text


def test_every_edge_drawn_with_its_kind() -> None:
    """Cut inputs get a small node and a dashed edge; nothing is dropped."""
    trace, _, _ = case_trace("detach")
    text = trace.to_dot()
    edges = re.findall(r"^\s+(\w+) -> (\w+) \[(.*)\];$", text, re.M)
    assert len(edges) == len(trace.seeds) + sum(len(n.edges) for n in trace.nodes)
    cut = [e for e in edges if e[1].startswith("const")]
    assert cut and all("style=dashed" in attrs and "gt-cut" in attrs for _, _, attrs in cut)
    assert re.search(r"^\s+const\d+_\d+ \[", text, re.M)


def test_zero_gradients_are_dashed_grey_and_others_solid() -> None:
    """A one-hot seed through stack: one PowBackward0 gets 1, the others send exact zeros (dashed, grey)."""
    x = torch.tensor(1.0, requires_grad=True)
    trace = tracer.trace(torch.stack([x**2, x**3]), torch.tensor([1.0, 0.0]))
    text = trace.to_dot()
    zero_grey = THEMES["light"].zero
    zero, nonzero = 0, 0
    for n in trace.steps:
        for k, (edge, g) in enumerate(zip(n.edges, n.vjp, strict=False)):
            if edge.target is None or g is None:
                continue
            attrs = re.search(rf"^\s+n{n.id} -> n{edge.target} \[id=\"e{n.id}_{k}\".*\];$", text, re.M)
            assert attrs is not None
            if g.norm == 0:
                zero += 1
                assert "style=dashed" in attrs[0] and f'color="{zero_grey}"' in attrs[0]
            else:
                nonzero += 1
                assert "style=dashed" not in attrs[0]
    assert zero == 2 and nonzero == 2  # into x**3's node and from it to x: zeros
    assert "dashed grey: exactly zero" in text


def test_fan_in_shows_parts_and_sum() -> None:
    trace, leaves, _ = case_trace("x_times_x_ones")
    leaf_node = trace.leaves["x"].node
    text = trace.to_dot()
    line = next(ln for ln in text.splitlines() if ln.strip().startswith(f"n{leaf_node} [id="))
    assert "sum of 2 incoming gradients" in line
    assert line.count("step 1") >= 2  # both parts come from the MulBackward0 step
    expected = ", ".join(f"{v:g}" for v in leaves["x"].grad.tolist())
    assert f"[{expected}&#93;" in line


def test_pruned_nodes_are_dashed_and_kept() -> None:
    a = torch.tensor([1.0, 2.0], requires_grad=True)
    b = torch.tensor([3.0, 4.0], requires_grad=True)
    t = tracer.trace((a * b).sum(), inputs=[a])
    assert t.unexecuted, "inputs= should leave b's AccumulateGrad unexecuted"
    text = t.to_dot()
    for n in t.unexecuted:
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(f"n{n.id} [id="))
        assert "gt-unrun" in line and 'STYLE="dashed"' in line and "not run" in line
    assert "dashed" in next(ln for ln in text.splitlines() if f"-> n{t.unexecuted[0].id} [" in ln)


def test_unreached_leaf_is_drawn() -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    w = torch.tensor([5.0], requires_grad=True)
    t = tracer.trace((x * 2).sum(), names={"x": x, "w": w})
    assert t.leaves["w"].node is None
    text = t.to_dot()
    assert re.search(r'^\s+leaf\d+ \[id="leaf\d+", class="gt-leaf gt-unrun"', text, re.M)
    assert "no gradient: not on any path" in text


def test_leaf_before_after_across_passes() -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    t = tracer.trace((x * x).sum())
    text = t.to_dot()
    assert ".grad before" in text and ".grad after" in text
    assert "[3, 3&#93;" in text  # before: the first pass's 3s
    assert "[5, 7&#93;" in text  # after: 3 + 2x


def test_retained_and_grad_inputs_shown() -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.retain_grad()
    t = tracer.trace((y * y).sum())
    assert t.leaves["y"].kind == "retained"
    assert "retain_grad " in t.to_dot() and "<B>y</B>" in t.to_dot()

    with tracer.record() as rec:
        torch.autograd.grad((x**2).sum(), [x])
    (g,) = rec.traces
    text = g.to_dot()
    assert "torch.autograd.grad of" in text and "returned by grad()" in text


def test_nan_and_failed_check_in_warning_colour() -> None:
    class Squared(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):  # type: ignore[no-untyped-def]
            return x.clone()

        @staticmethod
        def backward(ctx, g):  # type: ignore[no-untyped-def]
            return g * g  # not linear in g: not a vector-Jacobian product

    x = torch.tensor([0.0, 4.0], requires_grad=True)
    t = tracer.trace(Squared.apply(x.sqrt()), torch.tensor([3.0, 1.0]))
    text = t.to_dot()
    warning = THEMES["light"].warning
    bad = [n for n in t.steps if n.check is not None and not n.check.ok]
    assert bad, "the non-linear backward should fail the vᵀJ check"
    line = next(ln for ln in text.splitlines() if ln.strip().startswith(f"n{bad[0].id} [id="))
    assert f'COLOR="{warning}"' in line and "vᵀJ ≠ v·J" in line
    sqrt = next(n for n in t.steps if n.name == "SqrtBackward0")
    line = next(ln for ln in text.splitlines() if ln.strip().startswith(f"n{sqrt.id} [id="))
    assert "NaN or Inf" in line
    assert any(f'color="{warning}"' in ln for ln in text.splitlines() if f"n{sqrt.id} -> " in ln)


def test_incomplete_trace_highlights_raising_node() -> None:
    class Fails(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):  # type: ignore[no-untyped-def]
            return x * 1

        @staticmethod
        def backward(ctx, g):  # type: ignore[no-untyped-def]
            raise RuntimeError("backward of Fails is broken")

    x = torch.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="broken") as info:
        tracer.trace((Fails.apply(x) * 2).sum())
    t = info.value.partial_trace  # type: ignore[attr-defined]
    assert not t.complete
    text = t.to_dot()
    raised = next(n for n in t.nodes if n.note and n.note.startswith("raised"))
    line = next(ln for ln in text.splitlines() if ln.strip().startswith(f"n{raised.id} [id="))
    assert THEMES["light"].warning in line and "backward of Fails is broken" in line
    assert "v[0&#93; from step" in line and "[2&#93;" in line  # what arrived before it raised: d(2·y)/dy = 2
    assert "incomplete" in text.splitlines()[1]


def test_module_clusters_nest_by_path() -> None:
    trace, _, _ = case_trace("z_ones")
    modules = ["enc.0", "enc", "enc.1", None]
    tagged = dataclasses.replace(
        trace,
        nodes=tuple(
            dataclasses.replace(n, module=modules[i % len(modules)]) if n.leaf is None else n
            for i, n in enumerate(trace.nodes)
        ),
    )
    text = tagged.to_dot()
    assert text.count("subgraph cluster_") == 3
    outer = text.index("subgraph cluster_0")  # 'enc' sorts first and holds the other two
    assert outer < text.index("subgraph cluster_1") < text.index("subgraph cluster_2")
    assert text.count("{") == text.count("}")
    assert tagged.to_dot(clusters=False).count("subgraph") == 0


def test_big_tensors_show_statistics() -> None:
    x = torch.linspace(-1, 1, 100, requires_grad=True)
    t = tracer.trace((x**3).sum())
    text = t.to_dot()
    assert "[100] float32" in text and "‖·‖" in text and "zeros" in text
    labels = _labels(t.to_dot(stats=False))
    assert "mean" not in labels and "‖·‖" in labels


def test_estimated_statistics_marked() -> None:
    x = torch.linspace(-1, 1, 5000, requires_grad=True)
    t = tracer.trace((x * 2).sum())
    stats = [i.stats for n in t.steps for i in n.vjp if i is not None and i.stats is not None]
    assert any(not s.exact for s in stats), "the recorder samples large intermediate gradients"
    assert "‖·‖ ≈" in t.to_dot()


# -- options


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"direction": "XY"}, r"unknown direction: 'XY' \(must be one of \['TB', 'LR'\]\)"),
        ({"theme": "pink"}, r"unknown theme: 'pink' \(must be one of \['light', 'dark', 'transparent'\]\)"),
        ({"precision": 0}, r"precision must be a whole number between 1 and 17, got 0"),
        ({"precision": 2.5}, r"precision must be a whole number"),
        ({"max_elements": -1}, r"max_elements must be a whole number >= 0, got -1"),
        ({"jacobian": "yes"}, r"jacobian must be True or False, got 'yes'"),
        ({"step": 0}, r"step must be a whole number >= 1"),
        ({"step": 99}, r"step must be between 1 and 2 \(the steps this pass ran\), got 99"),
        ({"max_nodes": True}, r"max_nodes must be a whole number"),
    ],
)
def test_bad_option_values(options: dict[str, object], message: str) -> None:
    trace, _, _ = case_trace("many_points_ones_like")
    with pytest.raises(ValueError, match=message):
        trace.to_dot(**options)


def test_unknown_option_names_the_allowed_set() -> None:
    trace, _, _ = case_trace("square")
    with pytest.raises(TypeError, match=r"unknown option: 'colour' \(must be one of \[") as info:
        trace.to_dot(colour="red")
    assert all(name in str(info.value) for name in OPTION_NAMES)


def test_options_change_the_picture() -> None:
    trace, _, _ = case_trace("many_points_ones_like")
    base = trace.to_dot()
    assert "rankdir=LR" in trace.to_dot(direction="LR") and "rankdir=TB" in base
    assert "J  → step 2" in base and "J  → step 2" not in trace.to_dot(jacobian=False)
    assert "label=<<TABLE" in next(ln for ln in base.splitlines() if "n1 -> n2" in ln)
    assert "label=" not in next(ln for ln in trace.to_dot(edge_labels=False).splitlines() if "n1 -> n2" in ln)
    assert "-4.000" not in base and "-4" in base
    small = trace.to_dot(max_elements=2)
    assert "[5] float32" in small and "J  → step 2" not in small
    assert "legend" not in trace.to_dot(legend=False)
    assert 'bgcolor="#0d1117"' in trace.to_dot(theme="dark")
    assert 'bgcolor="transparent"' in trace.to_dot(theme="transparent")
    x = torch.tensor([1 / 3], requires_grad=True)
    t = tracer.trace(x * (1 / 3))
    assert "0.333333" in _labels(t.to_dot(precision=6))
    assert "0.3333" in _labels(t.to_dot()) and "0.33333" not in _labels(t.to_dot())
    assert "0.3333333" in t.to_dot()  # tooltips carry more digits


def test_unknown_save_format(tmp_path: Path) -> None:
    trace, _, _ = case_trace("square")
    with pytest.raises(ValueError, match=r"unknown format: '\.xyz' \(must be one of \['\.svg', '\.png', '\.pdf'"):
        trace.save(tmp_path / "g.xyz")
    with pytest.raises(ValueError, match=r"unknown format: ''"):
        trace.save(tmp_path / "g")
    with pytest.raises(TypeError, match="unknown option"):
        trace.save(tmp_path / "g.dot", colour="red")


def test_save_dot_and_json(tmp_path: Path) -> None:
    trace, _, _ = case_trace("square")
    assert trace.save(tmp_path / "g.dot").read_text(encoding="utf-8") == trace.to_dot()
    assert tracer.load(trace.save(tmp_path / "g.json")).to_dot() == trace.to_dot()
    pictures = frames(trace, "dot")
    first = trace.save(tmp_path / "f.dot", steps=True)
    assert first.name == "f-step01.dot"
    assert [p.name for p in sorted(tmp_path.glob("f-step*.dot"))] == ["f-step01.dot", "f-step02.dot"][: len(pictures)]
    assert first.read_bytes() == pictures[0]
    with pytest.raises(TypeError, match=r"steps=True makes one picture per step"):
        trace.svg(steps=True)


def test_frames_mark_done_active_pending() -> None:
    trace, _, _ = case_trace("zero_d_100")
    n = len(trace.steps)
    for k in range(1, n + 1):
        text = trace.to_dot(step=k)
        states = dict(re.findall(r'^\s+n(\d+) \[id="n\d+", class="gt-node gt-\w+ gt-(\w+)"', text, re.M))
        for node in trace.steps:
            expected = "done" if node.id < k else "active" if node.id == k else "pending"
            assert states[str(node.id)] == expected, (k, node.id)
        assert f"frame: step {k} of {n}" in text


def test_node_limit(tmp_path: Path) -> None:
    trace, _, _ = case_trace("z_ones")
    count = len(trace.nodes) + len(trace.seeds) + sum(1 for n in trace.nodes for e in n.edges if e.target is None)
    with pytest.raises(tracer.DrawingTooLargeError, match=rf"{count} nodes to draw, more than max_nodes=3"):
        trace.svg(max_nodes=3)
    with pytest.raises(tracer.DrawingTooLargeError, match=rf"raise the limit with max_nodes={count}"):
        trace.save(tmp_path / "g.png", max_nodes=3)
    assert trace.to_dot(max_nodes=3)  # DOT has no limit
    with pytest.raises(tracer.DrawingTooLargeError, match="max_frames=1"):
        frames(trace, "dot", max_frames=1)


# -- escaping

NASTY = "<b>&\"x'\n</script>\\N ]"


def _nasty_trace() -> tracer.Trace:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    t = tracer.trace((x * x).sum(), names={NASTY: x})
    n = t.nodes[0]
    return dataclasses.replace(
        t,
        label=NASTY,
        nodes=(dataclasses.replace(n, note=f"no Jacobian: {NASTY}", source=f"/tmp/{NASTY}.py:3"), *t.nodes[1:]),
    )


def test_dot_escapes_user_text() -> None:
    text = _nasty_trace().to_dot()
    labels = _labels(text)
    assert "<b>&" not in labels and "</script>" not in labels
    assert "&lt;b&gt;&amp;&quot;x&#39;\\\\n&lt;/script&gt;\\\\N &#93;" in text  # label: literal, \N not expanded
    tooltips = re.findall(r'tooltip="((?:[^"\\]|\\.)*)"', text)
    assert any("<b>&\\\"x'\\\\\\\\n</script>\\\\\\\\N ]" in t for t in tooltips)


@pytest.mark.graphviz
def test_escaped_names_show_literally_in_svg() -> None:
    from tests.render_helpers import SVG, svg_root

    literal = "<b>&\"x'\\n</script>\\N ]"  # the newline shows as \n
    for detail in ("full", "compact"):
        root = svg_root(_nasty_trace().svg(detail=detail))
        shown = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
        assert any(literal in line for line in shown), (detail, shown)
        assert any(literal in (t.text or "") for t in root.iter(f"{SVG}title"))


# -- without Graphviz


def test_missing_dot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trace, _, _ = case_trace("square")
    monkeypatch.setenv("PATH", "")
    for call in (lambda: trace.svg(), lambda: trace.save(tmp_path / "g.png"), lambda: trace.save(tmp_path / "g.pdf")):
        with pytest.raises(tracer.GraphvizMissingError) as info:
            call()
        message = str(info.value)
        assert "apt-get install graphviz" in message and "brew install graphviz" in message
        assert "conda install -c conda-forge graphviz" in message
        assert "dnf install graphviz" in message and "winget install graphviz" in message
    assert trace.to_dot()
    assert trace.save(tmp_path / "g.dot").exists() and trace.save(tmp_path / "g.json").exists()
    with pytest.raises(tracer.GraphvizMissingError):
        trace.save(tmp_path / "g.html")


def test_compact_detail_for_large_graphs() -> None:
    """Above COMPACT_ABOVE nodes the picture keeps names and norms but drops tables and edge labels."""
    from tracer.render.options import COMPACT_ABOVE

    x = torch.linspace(-1, 1, 8, requires_grad=True)
    h = x
    for _ in range(COMPACT_ABOVE // 2 + 1):
        h = torch.sin(h) * 1.5
    t = tracer.trace(h.sum())
    assert len(t.nodes) > COMPACT_ABOVE
    auto = _labels(t.to_dot())
    assert auto == _labels(t.to_dot(detail="compact"))
    assert "‖v‖" in auto and "‖vᵀJ‖" in auto and "J  →" not in auto
    assert not re.search(r"^\s+n\d+ -> n\d+ .*label=", auto, re.M)
    full = _labels(t.to_dot(detail="full"))
    assert "J  →" in full and re.search(r"^\s+n\d+ -> n\d+ .*label=", full, re.M)
    small, _, _ = case_trace("square")
    assert small.to_dot() == small.to_dot(detail="full")
    tips = t.to_dot()
    assert "values [" not in tips and "‖·‖" in tips  # compact tooltips: every statistic, one line per tensor
    assert "values [" in t.to_dot(detail="full")
    leaf_line = next(ln for ln in auto.splitlines() if "gt-leaf" in ln)
    assert "x [8] · ‖grad‖ " in leaf_line and "shape=box" in leaf_line
    with pytest.raises(ValueError, match=r"unknown detail: 'some' \(must be one of \['auto', 'full', 'compact'\]\)"):
        t.to_dot(detail="some")
