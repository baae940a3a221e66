"""JSON round-trips exactly, and a malformed or foreign file gets a clear error naming what is wrong."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import tracer
from tests.cases import CASES
from tracer import TraceFormatError
from tracer.model.records import NoteKind


@pytest.mark.parametrize("case", CASES[::4], ids=[c.id for c in CASES[::4]])
def test_round_trip_is_exact(case, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    leaves = case.leaves()
    y = case.forward(leaves)
    trace = tracer.trace(y, case.seed(y), names=leaves)
    text = trace.to_json()
    assert tracer.load(text) == trace
    path = tmp_path / "t.json"
    path.write_text(text)
    assert tracer.load(path) == trace
    assert tracer.load(str(path)) == trace
    assert tracer.load(path).to_json() == text  # byte-identical after a round trip


def test_non_finite_numbers_are_standard_json() -> None:
    x = torch.tensor([1.0, 0.0], requires_grad=True)
    trace = tracer.trace((x.log() * 1).sum() + x.sqrt().sum() * 0)  # d/dx log(0) = inf, sqrt'(0) = inf; inf*0 = nan
    text = trace.to_json()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))
    back = tracer.load(text)
    assert back == trace or _same_with_nan(back, trace)
    grad = back.leaves["x"].grad
    assert grad is not None and grad.stats is not None and (grad.stats.nan or grad.stats.inf)


def _same_with_nan(a: tracer.Trace, b: tracer.Trace) -> bool:
    # NaN != NaN, so compare the JSON text instead
    return a.to_json() == b.to_json()


def _valid() -> dict:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    return json.loads(tracer.trace((x * x).sum()).to_json())


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(format="something.else"), "not a gradtrace trace"),
        (lambda d: d.update(version=99), "unsupported trace version 99"),
        (lambda d: d["trace"]["nodes"][0].update(name=5), "trace.nodes[0].name: expected a string, found int 5"),
        (lambda d: d["trace"]["nodes"][0].update(extra=1), "unknown field(s) ['extra']"),
        (lambda d: d["trace"]["nodes"][0].pop("id"), "missing field 'id'"),
        (lambda d: d["trace"]["nodes"][0]["edges"][0].update(target=99), "target 99 is not a node"),
        (lambda d: d["trace"].update(kind="forward"), "expected one of ['backward', 'grad']"),
        (lambda d: d["trace"]["seeds"][0]["v"].update(values=[1.0, 2.0]), "2 values for shape []"),
        (lambda d: d["trace"]["seeds"][0]["v"].update(shape=[-1]), "dimensions cannot be negative"),
        (lambda d: d["trace"]["nodes"][0].update(executed="yes"), "expected true or false"),
        (lambda d: d["trace"]["nodes"][0].update(note_kind="oops"), "expected one of ['raised', 'compiled',"),
    ],
)
def test_malformed_traces_name_the_problem(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    document = _valid()
    mutate(document)
    with pytest.raises(TraceFormatError) as info:
        tracer.load(json.dumps(document))
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "invalid JSON"),
        ("[1, 2]", "not a gradtrace trace"),
        ('{"format": "gradtrace.trace", "version": 1, "trace": ' + "[" * 100000 + "]" * 100000 + "}", "nested"),
        ('{"format": "gradtrace.trace", "version": 1, "trace": {"kind": NaN}}', "invalid JSON"),
        ('{"format": "gradtrace.trace", "version": ' + "9" * 5000 + "}", "invalid JSON"),
    ],
)
def test_hostile_text(text: str, message: str) -> None:
    with pytest.raises(TraceFormatError) as info:
        tracer.load(text)
    assert message in str(info.value)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no trace file at"):
        tracer.load(tmp_path / "missing.json")
    with pytest.raises(TraceFormatError, match="is a folder"):
        tracer.load(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text("not json")
    with pytest.raises(TraceFormatError, match=r"bad\.json: not a gradtrace trace: invalid JSON"):
        tracer.load(bad)


def test_huge_numbers_load_as_numbers() -> None:
    document = _valid()
    document["trace"]["seeds"][0]["v"]["stats"]["norm"] = 1e308
    back = tracer.load(json.dumps(document))
    assert back.seeds[0].v is not None and back.seeds[0].v.stats is not None
    assert math.isclose(back.seeds[0].v.stats.norm, 1e308)


@pytest.mark.parametrize(
    ("note", "kind"),
    [
        ("raised RuntimeError: boom", NoteKind.RAISED),
        ("torch.compile runs the backward of this compiled region as one function: ...", NoteKind.COMPILED),
        ("no Jacobian: calling MulBackward0 again raised RuntimeError: freed", NoteKind.NO_JACOBIAN),
        ("vᵀJ not checked: every column of J holds Inf or NaN", NoteKind.UNCHECKED),
        ("vᵀJ checked without 1 element(s) where J holds Inf or NaN (e.g. sqrt'(0))", NoteKind.UNCHECKED),
        ("no independent reference: the forward takes non-tensor arguments", NoteKind.NO_REFERENCE),
        ("the backward disagrees with the forward: vjp differs from v·J by up to 2", NoteKind.DISAGREES),
        ("something a later gradtrace says", None),
    ],
)
def test_a_file_from_before_note_kinds_gets_them_from_the_wording(note: str, kind: NoteKind | None) -> None:
    document = _valid()
    for node in document["trace"]["nodes"]:
        del node["note_kind"]  # files written before the field existed
    document["trace"]["nodes"][0]["note"] = note
    back = tracer.load(json.dumps(document))
    assert back.nodes[0].note == note and back.nodes[0].note_kind is kind
    assert all(n.note_kind is None for n in back.nodes[1:])


def test_note_kinds_round_trip() -> None:
    document = _valid()
    document["trace"]["nodes"][0].update(note="anything at all", note_kind="no-reference")
    back = tracer.load(json.dumps(document))
    assert back.nodes[0].note_kind is NoteKind.NO_REFERENCE  # the kind written wins over the wording
    assert json.loads(back.to_json())["trace"]["nodes"][0]["note_kind"] == "no-reference"
