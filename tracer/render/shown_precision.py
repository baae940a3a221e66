"""Two drawings' text compared at the precision a reader sees: every word exactly, every number within a tolerance.

The gallery's DOT files and the golden files are computed afresh on every machine, and another CPU rounds the last
bits of a float differently (other vector kernels, another order of summation): a tooltip that prints 8 significant
digits, or a mean that cancels to 1e-17 on one machine and to 0 on another, shows it. Committed outputs are
therefore checked with `mismatch()`: the text outside numbers must be identical (structure, names, ops, colours),
and two numbers are the same when they differ by less than RELATIVE of their size (about the fourth significant
digit, what a label shows), or by less than ABSOLUTE when both are all but zero. A real change — a different
gradient, an extra node, a new word — is still caught.
"""

from __future__ import annotations

import re

RELATIVE = 1e-4
ABSOLUTE = 1e-9

# A number standing on its own: not part of a name ('n50', 'e50_1'), a colour ('#439e46') or a version ('2.13.0').
NUMBER = re.compile(r"(?<![\w#.])[-−]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.])")


def _value(token: str) -> float:
    return float(token.replace("−", "-"))


def same_number(a: str, b: str) -> bool:
    x, y = _value(a), _value(b)
    return abs(x - y) <= max(RELATIVE * max(abs(x), abs(y)), ABSOLUTE)


def mismatch(expected: str, actual: str) -> str | None:
    """None when the two texts are the same at the shown precision; else where they first differ, in one line."""
    if expected == actual:
        return None
    words_e, words_a = NUMBER.split(expected), NUMBER.split(actual)
    numbers_e, numbers_a = NUMBER.findall(expected), NUMBER.findall(actual)
    for k, (we, wa) in enumerate(zip(words_e, words_a, strict=False)):
        if we != wa:
            return f"text differs near {_context(we, wa)}"
        if k < min(len(numbers_e), len(numbers_a)) and not same_number(numbers_e[k], numbers_a[k]):
            return f"number {numbers_e[k]} became {numbers_a[k]} after {we[-40:]!r}"
    if len(numbers_e) != len(numbers_a) or len(words_e) != len(words_a):
        return f"one text is longer: {len(expected)} vs {len(actual)} characters"
    return None


def _context(a: str, b: str) -> str:
    at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return f"{a[max(0, at - 30) : at + 30]!r} vs {b[max(0, at - 30) : at + 30]!r}"
