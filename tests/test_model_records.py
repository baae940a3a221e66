"""The records are plain, frozen and built by keyword: a field added to Step can never shift the values after it."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from tracer.model import records

RECORDS = [c for _, c in inspect.getmembers(records, inspect.isclass) if dataclasses.is_dataclass(c)]


def test_every_record_is_found() -> None:
    names = {c.__name__ for c in RECORDS}
    assert {"Stats", "TensorInfo", "Edge", "Jacobian", "Check", "Step", "Seed", "Leaf", "Options", "Trace"} <= names


@pytest.mark.parametrize("record", RECORDS, ids=lambda c: c.__name__)
def test_records_are_frozen_and_keyword_only(record: type) -> None:
    params = dataclasses.fields(record)
    assert record.__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert all(f.kw_only for f in params), f"{record.__name__}: build it by keyword (kw_only=True)"
    with pytest.raises(TypeError):
        record(*range(len(params)))  # positionally: refused
