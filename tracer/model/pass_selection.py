"""Which passes of a long run to keep or draw: 'first,last,flagged', 'every:100', '1,10,last', 'all' — one parser for
record(keep=...) and the CLI's --passes."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import GradtraceError

_WORDS = ("all", "none", "first", "last", "flagged", "first-flagged")
_GRAMMAR = (
    "A pass selection is a comma-separated list of: all, none, first, last, flagged (passes whose gradients hold "
    "NaN or Inf, vanish or explode), first-flagged (of those, the first to carry each kind of flag), "
    "every:N (passes N, 2N, 3N, ...), a pass number (7) or a range of pass "
    "numbers (3-7); passes are numbered from 1 in the order they started, e.g. 'first,last,flagged', "
    "'1,10,last' or 'every:100,flagged'."
)


class PassSelectionError(GradtraceError, ValueError):
    """A pass selection (record(keep=...), gradtrace run --passes) that cannot be read."""


@dataclass(frozen=True, kw_only=True)
class PassSelection:
    """A parsed pass selection; `selects` answers for one pass. 'last' is the final pass of a block, known only
    when the block closes: a recorder holds the most recent pass until the next one arrives (see `last`)."""

    spec: str  # the selection as written, normalised ('first,last,flagged')
    all: bool = False
    first: bool = False
    last: bool = False
    flagged: bool = False
    first_flagged: bool = False  # only the first pass to carry each kind of flag (NaN, Inf, vanishing, exploding)
    every: tuple[int, ...] = ()
    ranges: tuple[tuple[int, int], ...] = ()  # inclusive (start, end); a single pass number n is (n, n)

    def selects(self, index: int, *, is_last: bool = False, flagged: bool = False, new_flag: bool = False) -> bool:
        """Whether pass `index` (1-based) is chosen; `is_last`: it is the final pass of the block, `flagged`: its
        health flags are not empty, `new_flag`: one of them is a kind no earlier pass of the block carried."""
        return (
            self.all
            or (self.first and index == 1)
            or (self.last and is_last)
            or (self.flagged and flagged)
            or (self.first_flagged and new_flag)
            or any(index % n == 0 for n in self.every)
            or any(start <= index <= end for start, end in self.ranges)
        )

    @property
    def everything(self) -> bool:
        """Every pass is chosen ('all')."""
        return self.all

    def describe(self) -> str:
        """The selection in words, for messages: 'the first pass, the last pass and every flagged pass'."""
        if self.all:
            return "every pass"
        parts = []
        if self.first:
            parts.append("the first pass")
        if self.last:
            parts.append("the last pass")
        if self.flagged:
            parts.append("every flagged pass (NaN, Inf, vanishing, exploding)")
        elif self.first_flagged:
            parts.append("the first pass with each health flag (NaN, Inf, vanishing, exploding)")
        parts += [f"every {_ordinal(n)} pass" if n > 1 else "every pass" for n in self.every]
        parts += [f"pass {a}" if a == b else f"passes {a}-{b}" for a, b in self.ranges]
        if not parts:
            return "no pass"
        return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]

    def __str__(self) -> str:
        return self.spec


ALL = PassSelection(spec="all", all=True)


def parse_pass_selection(spec: str | PassSelection) -> PassSelection:
    """Read a selection such as 'first,last,flagged', 'every:100,flagged', '1,10,last' or 'all'; raises
    PassSelectionError naming the part it cannot read and how to write it."""
    if isinstance(spec, PassSelection):
        return spec
    if not isinstance(spec, str):
        raise PassSelectionError(
            f"a pass selection is text such as 'first,last,flagged', got {type(spec).__name__} {_shown(spec)}. "
            + _GRAMMAR
        )
    parts = [p.strip().lower() for p in spec.split(",")]
    if not spec.strip() or any(not p for p in parts):
        raise PassSelectionError(f"{_shown(spec)} has an empty part: write the passes between commas. " + _GRAMMAR)
    words: set[str] = set()
    every: list[int] = []
    ranges: list[tuple[int, int]] = []
    for part in parts:
        if part in _WORDS:
            words.add(part)
        elif part.startswith("every"):
            every.append(_every(part, spec))
        elif re.fullmatch(r"\d+", part):
            n = _number(part, part, spec)
            ranges.append((n, n))
        elif re.fullmatch(r"\d+\s*-\s*\d+", part):
            a, b = (_number(x.strip(), part, spec) for x in part.split("-"))
            if a > b:
                raise PassSelectionError(
                    f"{_where(part, spec)} is a range that ends before it starts: write it as {b}-{a}. " + _GRAMMAR
                )
            ranges.append((a, b))
        else:
            raise PassSelectionError(f"{_where(part, spec)} is not a pass. " + _hint(part))
    if "none" in words and len(parts) > 1:
        raise PassSelectionError(
            f"the pass selection {_shown(spec)} combines 'none' with other passes: 'none' keeps no pass (every pass "
            "still gets its digest) and stands alone. " + _GRAMMAR
        )
    if "all" in words:
        return ALL if len(parts) == 1 else PassSelection(spec="all", all=True)
    ranges = sorted(set(ranges))
    every = sorted(set(every))
    if "flagged" in words:
        words.discard("first-flagged")  # every flagged pass includes the first of each kind
    normal: list[str] = [w for w in ("first", "last", "flagged", "first-flagged", "none") if w in words]
    normal += [f"every:{n}" for n in every]
    normal += [str(a) if a == b else f"{a}-{b}" for a, b in ranges]
    return PassSelection(
        spec=",".join(normal),
        first="first" in words,
        last="last" in words,
        flagged="flagged" in words,
        first_flagged="first-flagged" in words,
        every=tuple(every),
        ranges=tuple(ranges),
    )


def _every(part: str, spec: str) -> int:
    match = re.fullmatch(r"every\s*:\s*(\S+)", part)
    if match is None:
        raise PassSelectionError(
            f"{_where(part, spec)} is not a pass: every takes a step after a colon, "
            "as every:100 (passes 100, 200, 300, ...). " + _GRAMMAR
        )
    text = match.group(1)
    if not re.fullmatch(r"\d+", text) or int(text) < 1:
        raise PassSelectionError(
            f"{_where(part, spec)} is not a pass: the step of every:N is a whole "
            f"number of at least 1, got {_shown(text)} (every:1 is every pass, every:100 passes 100, 200, ...). "
            + _GRAMMAR
        )
    return int(text)


def _number(text: str, part: str, spec: str) -> int:
    n = int(text)
    if n < 1:
        raise PassSelectionError(
            f"{_where(part, spec)} names pass {n}, but passes are numbered from 1 (pass 1 is the first). " + _GRAMMAR
        )
    if n > 2**63 - 1:
        raise PassSelectionError(f"{_where(part, spec)} is too large a pass number")
    return n


def _hint(part: str) -> str:
    """What the user probably meant, then the grammar."""
    if part.startswith("last") or part.startswith("first"):
        word = "last" if part.startswith("last") else "first"
        return (
            f"'{word}' stands alone: counting from it (last-3, first+2) is not supported; name the passes by number "
            f"(e.g. 997-1000) or keep {word} alongside every:N. " + _GRAMMAR
        )
    if part.startswith("-") or re.fullmatch(r"-?\d+(\.\d*)?", part):
        return "Pass numbers are whole numbers from 1. " + _GRAMMAR
    return _GRAMMAR


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _where(part: str, spec: str) -> str:
    """How a message names the part it is about: the whole selection when that is all there is."""
    whole = f"the pass selection {_shown(spec)}"
    return whole if part == spec.strip().lower() else f"{_shown(part)} in {whole}"


def _shown(value: object, limit: int = 60) -> str:
    shown = repr(value)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"
