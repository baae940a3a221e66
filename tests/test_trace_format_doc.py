"""docs/trace-format.md stays true: every field of every record is documented, and its example loads and is right."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import torch

import tracer
from tracer.model import records as model
from tracer.model.serial import FORMAT, VERSION

DOC = Path(__file__).resolve().parent.parent / "docs" / "trace-format.md"
RECORDS = {
    "Trace": model.Trace,
    "Seed": model.Seed,
    "Step (a node)": model.Step,
    "Edge": model.Edge,
    "Leaf": model.Leaf,
    "TensorInfo (a recorded tensor)": model.TensorInfo,
    "Stats": model.Stats,
    "Jacobian": model.Jacobian,
    "Check": model.Check,
    "Options": model.Options,
}


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def _documented_fields(section: str) -> list[str]:
    """The field names in the first column of a section's table (`shape`, `dtype` rows name several)."""
    names = []
    for line in section.splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names += re.findall(r"`(\w+)`", first_cell)
    return names


def test_every_field_of_every_record_is_documented_in_order() -> None:
    sections = _sections(DOC.read_text(encoding="utf-8"))
    for heading, record in RECORDS.items():
        assert heading in sections, f"docs/trace-format.md has no section '## {heading}'"
        fields = [f.name for f in dataclasses.fields(record)]
        assert _documented_fields(sections[heading]) == fields, f"the table of {heading} must list {fields}"


def test_envelope_and_version_match_the_code() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert f"version {VERSION}" in text.splitlines()[0]
    assert f'{{"format": "{FORMAT}", "version": {VERSION}, "trace": {{...}}}}' in text


def test_the_example_loads_and_matches_a_fresh_recording() -> None:
    example = re.search(r"## An example.*?```json\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert example is not None
    loaded = tracer.load(example[1])
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    fresh = tracer.trace(x**2, torch.tensor([1.0, 0.5]))
    assert [(n.id, n.name, n.op, n.edges, n.jacobian, n.check) for n in loaded.nodes] == [
        (n.id, n.name, n.op, n.edges, n.jacobian, n.check) for n in fresh.nodes
    ]
    for got, want in zip(loaded.nodes, fresh.nodes, strict=True):
        assert [t.values for t in got.v] == [t.values for t in want.v]  # type: ignore[union-attr]
        assert [t.values for t in got.vjp] == [t.values for t in want.vjp]  # type: ignore[union-attr]
    for field in ("grad", "grad_total", "value"):
        assert getattr(loaded.leaves["x"], field).values == getattr(fresh.leaves["x"], field).values
    assert loaded.seeds[0].v == fresh.seeds[0].v
