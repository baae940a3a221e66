"""The timeline: norms per leaf and module across passes, marks, update ratios, CSV/JSON, the chart, a real loop."""

from __future__ import annotations

import csv
import io
import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch

import tracer
from tracer.analyse.timeline import module_of, timeline
from tracer.model.digest import LeafDigest, PassDigest

SVG = "{http://www.w3.org/2000/svg}"


def leaf(
    name: str, norm: float | None, *, module: str | None = None, nan: int = 0, inf: int = 0, **kw: float
) -> LeafDigest:
    return LeafDigest(
        name=name,
        module=module,
        shape=(2, 2),
        grad_norm=norm,
        grad_max_abs=None if norm is None else norm,
        zeros=0.0,
        nan=nan,
        inf=inf,
        value_norm=kw.get("value_norm"),
        update_norm=kw.get("update_norm"),
    )


def digest(
    index: int, *leaves: LeafDigest, flags: tuple[str, ...] = (), kept: bool = False, rank: int | None = None
) -> PassDigest:
    return PassDigest(index=index, label=None, rank=rank, leaves=leaves, flags=flags, kept=kept)


def test_a_module_norm_is_the_root_of_the_summed_squares_of_its_leaves() -> None:
    line = timeline([digest(1, leaf("fc.weight", 3.0, module="fc"), leaf("fc.bias", 4.0, module="fc"))])
    assert line.series("fc").grad_norm == (5.0,)
    assert line.series("fc").kind == "module"
    assert line.series("fc.weight").grad_norm == (3.0,)
    assert line.series("fc").leaves == ("fc.weight", "fc.bias")


def test_module_falls_back_to_the_name_before_the_last_dot_and_a_plain_tensor_is_its_own_row() -> None:
    assert module_of(leaf("net.0.weight", 1.0)) == "net.0"
    assert module_of(leaf("w", 1.0)) == "w"
    assert module_of(leaf("w", 1.0, module="")) == "(model)"


def test_nan_and_inf_are_marked_in_their_pass_and_their_module() -> None:
    line = timeline(
        [
            digest(1, leaf("a.w", 1.0), leaf("b.w", 1.0)),
            digest(2, leaf("a.w", math.nan, nan=3), leaf("b.w", 1.0), flags=("nan",)),
            digest(3, leaf("a.w", 1.0), leaf("b.w", math.inf, inf=1), flags=("inf",)),
        ]
    )
    a, b = line.series("a"), line.series("b")
    assert math.isnan(a.grad_norm[1]) and a.marks[1] == ("nan",)
    assert math.isinf(b.grad_norm[2]) and b.marks[2] == ("inf",)
    assert a.marks[0] == () and b.marks[1] == ()
    assert line.flags == ((), ("nan",), ("inf",))


def test_no_gradient_is_none_not_zero() -> None:
    line = timeline([digest(1, leaf("a.w", None), leaf("b.w", 2.0)), digest(2, leaf("a.w", 0.0), leaf("b.w", 2.0))])
    assert line.series("a").grad_norm == (None, 0.0)
    assert line.series("a").marks[1] == ("vanishing",)  # zero while b got a gradient


def test_update_ratio_is_the_step_over_the_weight_where_known() -> None:
    line = timeline(
        [
            digest(1, leaf("l.w", 1.0, value_norm=2.0), leaf("l.b", 1.0, value_norm=1.0)),
            digest(2, leaf("l.w", 1.0, value_norm=2.0, update_norm=0.02), leaf("l.b", 1.0)),
        ]
    )
    assert line.series("l.w").update_ratio == (None, 0.01)
    # the module counts only the leaves whose update is known: l.w alone in pass 2
    assert line.series("l").update_ratio == (None, 0.01)


def test_vanishing_is_against_the_largest_module_and_exploding_against_the_own_median() -> None:
    passes = [digest(i, leaf("big.w", 1.0), leaf("small.w", 1e-3)) for i in range(1, 6)]
    passes.append(digest(6, leaf("big.w", 1.0), leaf("small.w", 1e-9)))
    passes.append(digest(7, leaf("big.w", 1e7), leaf("small.w", 1e-3)))
    line = timeline(passes)
    small, big = line.series("small"), line.series("big")
    assert small.marks[5] == ("vanishing",) and small.marks[4] == ()
    assert big.marks[6] == ("exploding",)
    # against the largest of pass 7 (1e7), small's 1e-3 is 1e-10 of it: vanishing too
    assert small.marks[6] == ("vanishing",)
    custom = timeline(passes, vanishing=1e-12, exploding=1e8)
    assert not any(custom.series("small").marks) and not any(custom.series("big").marks)


@pytest.mark.parametrize("bad", [0, -1.0, math.nan, math.inf, True, "1e-6"])
def test_thresholds_are_checked(bad: object) -> None:
    with pytest.raises(ValueError, match="vanishing must be a positive finite number"):
        timeline([], vanishing=bad)  # type: ignore[arg-type]


def test_ranks_are_kept_apart_and_side_by_side() -> None:
    line = timeline(
        [
            digest(1, leaf("m.w", 1.0), rank=1),
            digest(1, leaf("m.w", 2.0), rank=0),
            digest(2, leaf("m.w", 3.0), rank=0),
        ]
    )
    assert line.passes == (1, 2) and line.ranks == (0, 1)
    assert line.series("m", rank=0).grad_norm == (2.0, 3.0)
    assert line.series("m", rank=1).grad_norm == (1.0, None)
    assert line.series("m", rank=1).title == "m [rank 1]"
    svg = line.svg()
    root = ET.fromstring(svg)
    labels = [t.text for t in root.iter(f"{SVG}text") if t.text and t.text.startswith("m [")]
    assert labels[:2] == ["m [rank 0]", "m [rank 1]"]  # the heatmap rows (then the lines' legend)


def test_a_rank_apart_from_the_others_is_marked_diverged() -> None:
    passes = []
    for i in (1, 2, 3):
        for rank, norm in ((0, 1.0), (1, 1.3), (2, 0.9)):
            if i == 2 and rank == 1:
                norm = 50.0  # rank 1's own gradient, before DDP averages, is 50x the others'
            if i == 3 and rank == 2:
                norm = math.nan
            passes.append(digest(i, leaf("m.w", norm, nan=int(math.isnan(norm))), rank=rank))
    line = timeline(passes)
    marks = {r: line.series("m", rank=r).marks for r in (0, 1, 2)}
    assert marks[1] == ((), ("diverged",), ())
    assert marks[2] == ((), (), ("nan", "diverged"))
    assert marks[0] == ((), (), ())
    assert timeline(passes, diverging=100.0).series("m", rank=1).marks[1] == ()
    assert timeline([digest(1, leaf("m.w", 1.0))]).series("m").marks == ((),)  # one rank: nothing to compare


def test_csv_is_long_and_exact_and_json_holds_the_same_numbers() -> None:
    norm = 0.1 + 0.2  # a float whose shortest text has 17 digits
    line = timeline(
        [digest(3, leaf("l.w", norm, value_norm=4.0, update_norm=1.0)), digest(4, leaf("l.w", math.nan, nan=1))]
    )
    rows = list(csv.DictReader(io.StringIO(line.to_csv())))
    assert [r["pass"] for r in rows] == ["3", "3", "4", "4"]
    leaf_rows = [r for r in rows if r["kind"] == "leaf"]
    assert float(leaf_rows[0]["grad_norm"]) == norm
    assert float(leaf_rows[0]["update_ratio"]) == 0.25
    assert leaf_rows[1]["grad_norm"] == "nan" and leaf_rows[1]["marks"] == "nan"
    document = json.loads(line.to_json())
    assert document["format"] == "gradtrace.timeline" and document["passes"] == [3, 4]
    assert document["leaves"][0]["grad_norm"] == [norm, "nan"]


def test_svg_is_xml_with_odd_names_escaped_and_nan_inf_drawn_apart(tmp_path: Path) -> None:
    odd = 'w<&>"\x1b[31m\u202e'
    passes = [digest(i, leaf(f"{odd}.weight", 10.0**-i), leaf("ok.w", 1.0)) for i in range(1, 5)]
    passes.append(
        digest(5, leaf(f"{odd}.weight", math.nan, nan=1), leaf("ok.w", math.inf, inf=2), flags=("nan", "inf"))
    )
    line = timeline(passes)
    svg = line.svg()
    root = ET.fromstring(svg)  # valid XML
    texts = "".join(root.itertext())
    assert "\\x1b[31m" in texts and "\\u202e" in texts and "\x1b" not in texts
    fills = [r.get("fill") for r in root.iter(f"{SVG}rect")]
    from tracer.render.style import THEMES
    from tracer.render.timeline_chart import INF_COLOUR

    assert THEMES["light"].warning in fills and INF_COLOUR in fills
    tips = [t.text or "" for t in root.iter(f"{SVG}title")]
    assert any("pass 5: ‖grad‖ = NaN" in t for t in tips) and any("pass 5: ‖grad‖ = Inf" in t for t in tips)
    for suffix in ("svg", "csv", "json"):
        written = line.save(tmp_path / f"t.{suffix}")
        assert written.read_text(encoding="utf-8") == (
            svg if suffix == "svg" else line.to_csv() if suffix == "csv" else line.to_json()
        )
    with pytest.raises(ValueError, match=r"unknown timeline format: '\.png'"):
        line.save(tmp_path / "t.png")


def test_a_long_run_is_binned_and_keeps_its_nan_visible() -> None:
    passes = [digest(i, leaf("m.w", 1.0 + i)) for i in range(1, 2001)]
    passes[1499] = digest(1500, leaf("m.w", math.nan, nan=1), flags=("nan",))
    line = timeline(passes)
    root = ET.fromstring(line.svg(max_columns=100))
    cells = [r for r in root.iter(f"{SVG}rect") if (r.findtext(f"{SVG}title") or "").startswith("m, passes")]
    assert len(cells) == 100
    nan_cells = [c for c in cells if "NaN" in (c.findtext(f"{SVG}title") or "")]
    assert len(nan_cells) == 1 and "passes 1481–1500" in (nan_cells[0].findtext(f"{SVG}title") or "")


def test_chosen_lines_and_their_errors() -> None:
    line = timeline([digest(1, leaf("a.w", 1.0), leaf("b.w", 2.0))])
    root = ET.fromstring(line.svg(modules=["b"]))
    legend = [t.text for t in root.iter(f"{SVG}text") if t.text == "b"]
    assert legend  # b's line is named in the legend
    with pytest.raises(ValueError, match="no module or leaf 'zzz'"):
        line.svg(modules=["zzz"])
    with pytest.raises(ValueError, match="unknown rows"):
        line.svg(rows="cells")


def test_notebook_display_is_the_svg() -> None:
    line = timeline([digest(1, leaf("a.w", 1.0))])
    bundle = line._repr_mimebundle_()
    assert bundle["image/svg+xml"] == line.svg() and "1 pass" in bundle["text/plain"]


def test_a_recorded_200_step_loop_shows_its_nan_at_step_150_and_torchs_norms(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05)
    x, target = torch.randn(16, 4), torch.randn(16, 2)
    torch_norms: list[dict[str, float]] = []
    with tracer.record(model=model, keep="first,last,flagged") as rec:
        for step in range(1, 201):
            batch = x.clone()
            if step == 150:
                batch[0, 0] = math.nan
            optimiser.zero_grad()
            torch.nn.functional.mse_loss(model(batch), target).backward()
            torch_norms.append({n: float(p.grad.norm()) for n, p in model.named_parameters()})  # type: ignore[union-attr]
            if all(bool(p.grad.isfinite().all()) for p in model.parameters()):  # type: ignore[union-attr]
                optimiser.step()
    line = rec.timeline()
    assert line.passes == tuple(range(1, 201))
    flagged = [index for index, flags in zip(line.passes, line.flags, strict=True) if "nan" in flags]
    assert flagged == [150]
    nan_columns = {k for s in line.modules for k, marks in enumerate(s.marks) if "nan" in marks}
    assert nan_columns == {line.column(150)}
    assert 150 in [t.index for t in rec.traces]  # kept whole: flagged
    # the CSV holds torch's own gradient norms, pass by pass (NaN where torch's is NaN)
    path = line.save(tmp_path / "t.csv")
    rows = [r for r in csv.DictReader(io.StringIO(path.read_text())) if r["kind"] == "leaf"]
    assert len(rows) == 200 * 4
    for row in rows:
        expected = torch_norms[int(row["pass"]) - 1][row["name"].removeprefix("model.")]
        got = float(row["grad_norm"])
        assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected, rel=1e-6), row
    # modules: the root of the summed squares of their leaves' norms
    weight, bias = torch_norms[9]["0.weight"], torch_norms[9]["0.bias"]
    assert line.series("model.0").grad_norm[9] == pytest.approx(math.hypot(weight, bias), rel=1e-6)
    # the update ratio: how far the optimizer moved the weight between passes, over its size
    ratio = line.series("model.2.weight").update_ratio
    assert ratio[0] is None and ratio[1] is not None and 0 < ratio[1] < 1
    assert ratio[150] == 0.0  # the step after the NaN pass was skipped: nothing moved
    root = ET.fromstring(line.svg())
    tips = [t.text or "" for t in root.iter(f"{SVG}title")]
    assert any(t.startswith("model.0, pass 150: ‖grad‖ = NaN") for t in tips)
