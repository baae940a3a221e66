"""Escaping user-controlled text for DOT attributes, Graphviz HTML-like labels, HTML pages and hand-written SVG.

Every user string (a leaf's or module's name, a label, a file name, an exception's message) reaches those outputs
through `visible()` first (tracer/model/visible_text.py, the one definition the text reports share): control
characters, lone surrogates, noncharacters and bidi controls shown as their Python escapes, so every output is
valid XML, HTML, DOT and UTF-8 and reads like the name in the user's code. This module adds each format's quoting.
"""

from __future__ import annotations

import html
import os

from ..model.visible_text import visible, visible_lines

__all__ = [
    "basename_source",
    "dot_multiline",
    "dot_string",
    "label_text",
    "page_text",
    "plain_label",
    "visible",
]


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
    text = visible_lines(text)
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
