"""User text made visible: control characters, lone surrogates, noncharacters and bidi controls as escapes.

A leaf's or module's name, a label, a file name or an exception's message may hold any Python str. Before it is
shown anywhere (a picture, a page, a text report, a terminal), what XML cannot hold (C0 controls, lone surrogates,
the noncharacters U+FFFE and U+FFFF), what it holds but no one can see (C1 controls, the other noncharacters) and
what silently reorders or restyles the text around it (bidi embeddings, overrides and isolates; an ANSI escape
starts with the C0 control ESC) is shown as its Python escape (`\\x1b`, `\\ud800`, `\\u202e`). The result is valid
XML text and valid UTF-8, prints to any terminal as itself, and reads like the name in the user's code. The one
definition for pictures (tracer/render/escape.py adds the XML, DOT and HTML quoting) and text reports.
"""

from __future__ import annotations

import re


def _invisible(kept: str = "") -> re.Pattern[str]:
    controls = "".join(rf"\x{c:02x}" for c in range(0x20) if chr(c) not in kept)
    planes = "".join(rf"\U{p:04x}fffe\U{p:04x}ffff" for p in range(17))
    return re.compile(
        rf"[{controls}\x7f-\x9f"  # C0, DEL, C1
        r"\ud800-\udfff"  # surrogates: in a str always lone (a decoded pair is one character)
        rf"\ufdd0-\ufdef{planes}"  # noncharacters
        r"\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"  # bidi marks, embeddings, overrides, isolates
    )


_INVISIBLE = _invisible()
_INVISIBLE_BUT_NEWLINE = _invisible("\n")
_INVISIBLE_BUT_LAYOUT = _invisible("\n\t")


def _escape(m: re.Match[str]) -> str:
    return repr(m.group(0))[1:-1]


def visible(text: str, *, layout: bool = False) -> str:
    """Control characters, lone surrogates, noncharacters and bidi controls as their Python escapes (a newline
    in a name shows as `\\n`, on one line; U+202E as `\\u202e`): the result is valid XML text and valid UTF-8.
    `layout=True` keeps newlines and tabs, for text shown as lines (a message in a <pre>, a report, a script).
    The result holds none of those characters, so making it visible again changes nothing."""
    return (_INVISIBLE_BUT_LAYOUT if layout else _INVISIBLE).sub(_escape, text)


def visible_lines(text: str) -> str:
    """Like visible(), but newlines are kept (tabs are not): text meant as several lines of one label."""
    return _INVISIBLE_BUT_NEWLINE.sub(_escape, text)
