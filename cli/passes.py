"""`--pass` selections: pass numbers, ranges (2-5), open ranges (4-) and comma lists, as a click type."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import click

_ITEM = re.compile(r"^\s*(\d+)\s*(?:(-)\s*(\d*))?\s*$")


@dataclass(frozen=True)
class PassRange:
    """Passes first..last (1-based, inclusive); last None means to the end."""

    first: int
    last: int | None

    def __contains__(self, index: object) -> bool:
        return isinstance(index, int) and self.first <= index and (self.last is None or index <= self.last)

    def __str__(self) -> str:
        if self.last == self.first:
            return str(self.first)
        return f"{self.first}-{'' if self.last is None else self.last}"


def parse_passes(text: str) -> tuple[PassRange, ...]:
    """'3', '2-5', '4-', '1,3,6-' -> ranges; ValueError names the bad part and the accepted forms."""
    ranges = []
    for part in text.split(","):
        match = _ITEM.match(part)
        if match is None:
            raise ValueError(
                f"invalid pass: {part.strip()!r} (use a pass number like 3, a range like 2-5, "
                "an open range like 4-, or a comma list like 1,3,6-)"
            )
        first = int(match.group(1))
        last = None if match.group(2) and not match.group(3) else int(match.group(3) or first)
        if first < 1:
            raise ValueError(f"invalid pass: {part.strip()!r} (passes are numbered from 1)")
        if last is not None and last < first:
            raise ValueError(f"invalid pass range: {part.strip()!r} (the first pass must not come after the last)")
        ranges.append(PassRange(first, last))
    return tuple(ranges)


class PassesType(click.ParamType):
    """Click parameter type for one --pass value."""

    name = "K|A-B|A-"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[PassRange, ...]:
        if isinstance(value, tuple):
            return value
        try:
            return parse_passes(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def wanted(index: int, selection: tuple[PassRange, ...]) -> bool:
    """Whether pass `index` is selected; an empty selection keeps every pass."""
    return not selection or any(index in r for r in selection)


def missing(selection: tuple[PassRange, ...], count: int) -> list[str]:
    """The parts of the selection that name no recorded pass (there were `count`)."""
    return [str(r) for r in selection if r.first > count]
