"""Escaping user-controlled text for DOT attributes, Graphviz HTML-like labels, HTML pages and hand-written SVG.

Every user string (a leaf's or module's name, a label, a file name, an exception's message) reaches those outputs
through `visible()` first: what XML cannot hold (C0 controls, lone surrogates, the noncharacters U+FFFE and
U+FFFF), what it holds but no one can see (C1 controls, the other noncharacters) and what silently reorders the
text around it (bidi embeddings, overrides and isolates) is shown as its Python escape (`\\x1b`, `\\ud800`,
`\\u202e`), so every output is valid XML, HTML, DOT and UTF-8 and reads like the name in the user's code.
"""

from __future__ import annotations

import html
import os
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
    `layout=True` keeps newlines and tabs, for text shown as lines (a message in a <pre>, a script)."""
    return (_INVISIBLE_BUT_LAYOUT if layout else _INVISIBLE).sub(_escape, text)


def dot_string(text: str) -> str:
    """A double-quoted DOT string whose text Graphviz shows literally.

    Graphviz reads quoted strings twice: the lexer turns `\\\\` into `\\` and `\\"` into `"`, then attributes
    such as tooltip expand escapes like `\\N` (the node name). Four backslashes survive both as one.
    """
    text = visible(text).replace("\\", "\\\\\\\\").replace('"', '\\"')
    return f'"{text}"'


def dot_multiline(lines: list[str]) -> str:
    """A quoted DOT string of several lines (for tooltips), escaped like dot_string, lines joined by `\\n`.

    A newline inside one line's text shows as `\\n` like everywhere else; one pass over the joined text
    because tooltips are the bulk of a large graph's DOT.
    """
    text = "\n".join(line.replace("\n", "\\n") for line in lines)
    text = _INVISIBLE_BUT_NEWLINE.sub(_escape, text)
    text = text.replace("\\", "\\\\\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{text}"'


def plain_label(lines: list[str]) -> str:
    """A quoted plain-text DOT label of several lines. Graphviz reads labels once less than tooltips (no
    second pass over `\\\\`), so here two backslashes show as one, and `\\N` after them stays literal."""
    text = "\n".join(visible(line) for line in lines)
    text = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{text}"'


def label_text(text: str) -> str:
    """Text inside a Graphviz HTML-like label: XML entities, and `\\\\` so that `\\N` and friends stay literal."""
    text = visible(text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # Graphviz 2.43's label lexer rejects a text item that is only "]": the entity always works.
    text = text.replace('"', "&quot;").replace("'", "&#39;").replace("]", "&#93;")
    return text.replace("\\", "\\\\")


def page_text(text: str, *, layout: bool = False) -> str:
    """Text or an attribute value inside our HTML pages and hand-written SVG (the XML entities HTML shares);
    `layout=True` keeps newlines and tabs (see visible)."""
    return html.escape(visible(text, layout=layout), quote=True)


def basename_source(source: str | None) -> str | None:
    """'path/to/file.py:12' as 'file.py:12': outputs never carry absolute paths."""
    if source is None:
        return None
    path, sep, line = source.rpartition(":")
    if not sep or not line.isdigit():
        return os.path.basename(source.replace("\\", "/"))
    return f"{os.path.basename(path.replace(chr(92), '/'))}:{line}"
