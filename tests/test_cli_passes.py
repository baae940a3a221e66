"""`gradtrace run --passes`: which passes are drawn, the overview of every pass, --tensorboard, and bad specs."""

from __future__ import annotations

import csv
import io
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.cli_helpers import ROOT, invoke

NAN_SCRIPT = ROOT / "tests" / "scripts" / "nan_at_step.py"


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("every:0", "the step of every:N is a whole number of at least 1"),
        ("last-3", "'last' stands alone"),
        ("foo", "the pass selection 'foo' is not a pass"),
        ("first,,last", "has an empty part"),
    ],
)
def test_a_bad_spec_stops_before_the_script_runs_with_a_clear_message(tmp_path: Path, spec: str, says: str) -> None:
    script = tmp_path / "ran.py"
    script.write_text("open(__file__ + '.ran', 'w').close()\n")
    result = invoke("run", script, "-o", tmp_path / "out", "--passes", spec)
    assert result.exit_code == 2
    assert "Invalid value for '--passes'" in result.output and says in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "ran.py.ran").exists() and not (tmp_path / "out").exists()


@pytest.mark.graphviz
def test_a_nan_at_step_150_of_200_is_drawn_and_shows_in_the_overview_at_150(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke("run", NAN_SCRIPT, "-o", out, "--", "200", "150")
    assert result.exit_code == 0, result.output
    drawn = sorted(int(p.name.split(".pass")[1].split(".")[0]) for p in out.glob("nan_at_step.pass*.svg"))
    assert drawn == [1, 150, 200]
    assert "drew 3 of 200 passes" in result.output and "1, 150, 200" in result.output
    assert "nan_at_step.timeline.svg" in result.output
    rows = list(csv.DictReader(io.StringIO((out / "nan_at_step.timeline.csv").read_text())))
    assert sorted({int(r["pass"]) for r in rows}) == list(range(1, 201))
    nan_passes = sorted({int(r["pass"]) for r in rows if "nan" in r["marks"].split()})
    assert nan_passes == [150]
    assert all(math.isnan(float(r["grad_norm"])) for r in rows if r["pass"] == "150" and r["kind"] == "module")
    ET.parse(out / "nan_at_step.timeline.svg")  # valid XML
    index = (out / "index.html").read_text()
    assert 'src="nan_at_step.timeline.svg"' in index
    manifest = (out / ".gradtrace-manifest.json").read_text()
    assert "nan_at_step.timeline.svg" in manifest and "nan_at_step.timeline.csv" in manifest


@pytest.mark.graphviz
@pytest.mark.parametrize(
    ("spec", "expected"), [("all", [1, 2, 3, 4, 5, 6]), ("every:2", [2, 4, 6]), ("1,last", [1, 6]), ("3-4", [3, 4])]
)
def test_passes_chooses_what_is_drawn(tmp_path: Path, spec: str, expected: list[int]) -> None:
    out = tmp_path / "out"
    result = invoke("run", NAN_SCRIPT, "-o", out, "-f", "json", "--passes", spec, "--", "6", "100")
    assert result.exit_code == 0, result.output
    drawn = sorted(int(p.name.split(".pass")[1].split(".")[0]) for p in out.glob("nan_at_step.pass*.json"))
    assert drawn == expected
    assert f"drew {len(expected)} of 6 passes" in result.output
    assert (out / "nan_at_step.timeline.csv").exists()


@pytest.mark.graphviz
def test_tensorboard_dir_gets_the_scalars_of_every_pass(tmp_path: Path) -> None:
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    logdir = tmp_path / "runs"
    result = invoke("run", NAN_SCRIPT, "-o", tmp_path / "out", "-f", "json", "--tensorboard", logdir, "--", "5", "3")
    assert result.exit_code == 0, result.output
    assert "TensorBoard:" in result.output
    reader = event_accumulator.EventAccumulator(str(logdir), size_guidance={"scalars": 0, "histograms": 0})
    reader.Reload()
    scalars = reader.Tags()["scalars"]
    assert scalars and all(t.startswith(("grad_norm/", "update_ratio/")) for t in scalars)
    norm_tag = next(t for t in scalars if t.startswith("grad_norm/"))
    assert [e.step for e in reader.Scalars(norm_tag)] == [1, 2, 3, 4, 5]
    assert math.isnan(reader.Scalars(norm_tag)[2].value)  # the NaN of pass 3
    # histograms of the drawn passes (first, last, and the flagged pass 3), whose small leaves kept their values;
    # pass 3's gradients are all NaN: nothing to bin, and the run says the NaN values were left out
    for tag in reader.Tags()["histograms"]:
        assert [e.step for e in reader.Histograms(tag)] == [1, 5]
    assert len(reader.Tags()["histograms"]) == 4
    assert "NaN/Inf gradient values left out of the histograms" in result.output


@pytest.mark.graphviz
@pytest.mark.parametrize("spec", [None, "first,last,flagged"])
def test_default_keeps_only_the_first_pass_of_each_flag_and_draws_as_flagged_does(
    tmp_path: Path, spec: str | None
) -> None:
    """The default keeps 'first,last,first-flagged': the passes it draws, no trace of a repeated flag (which
    'flagged' keeps but run does not draw either)."""
    script = tmp_path / "flags.py"
    script.write_text(
        "import torch\n"
        "w = torch.ones(3, requires_grad=True)\n"
        "for scale in (2.0, 1e-7, 1e-8, 1e7, 1e-9, 1e8, 3.0):\n"
        "    (w * scale).sum().backward()\n"
    )
    out = tmp_path / "out"
    passes = [] if spec is None else ["--passes", spec]
    result = invoke("run", script, "-o", out, "-f", "json", *passes)
    assert result.exit_code == 0, result.output
    drawn = sorted(int(p.name.split(".pass")[1].split(".")[0]) for p in out.glob("flags.pass*.json"))
    assert drawn == [1, 2, 4, 7]
    assert "drew 4 of 7 passes" in result.output and "1, 2, 4, 7" in result.output
    assert "3 more flagged passes not drawn" in result.output
    rows = list(csv.DictReader(io.StringIO((out / "flags.timeline.csv").read_text())))
    assert sorted({int(r["pass"]) for r in rows}) == list(range(1, 8))  # every pass is summarised either way
    as_json = invoke("run", script, "-o", tmp_path / "again", "-f", "json", "--json", *passes)
    assert as_json.exit_code == 0, as_json.output
    expected = "first,last,first-flagged" if spec is None else spec
    assert f'"selection": "{expected}"' in as_json.output
