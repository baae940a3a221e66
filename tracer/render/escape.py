"""Escaping user-controlled text for DOT attributes, Graphviz HTML-like labels and HTML pages."""

from __future__ import annotations

import html
import os
import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def visible(text: str) -> str:
    """Control characters as their Python escapes (a newline in a name shows as `\\n`, on one line)."""
    return _CONTROL.sub(lambda m: repr(m.group(0))[1:-1], text)


def dot_string(text: str) -> str:
    """A double-quoted DOT string whose text Graphviz shows literally.

    Graphviz reads quoted strings twice: the lexer turns `\\\\` into `\\` and `\\"` into `"`, then attributes
    such as tooltip expand escapes like `\\N` (the node name). Four backslashes survive both as one.
    """
    text = visible(text).replace("\\", "\\\\\\\\").replace('"', '\\"')
    return f'"{text}"'


_CONTROL_BUT_NEWLINE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")


def dot_multiline(lines: list[str]) -> str:
    """A quoted DOT string of several lines (for tooltips), escaped like dot_string, lines joined by `\\n`.

    A newline inside one line's text shows as `\\n` like everywhere else; one pass over the joined text
    because tooltips are the bulk of a large graph's DOT.
    """
    text = "\n".join(line.replace("\n", "\\n") for line in lines)
    text = _CONTROL_BUT_NEWLINE.sub(lambda m: repr(m.group(0))[1:-1], text)
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


def page_text(text: str) -> str:
    """Text or an attribute value inside our HTML pages."""
    return html.escape(visible(text), quote=True)


def basename_source(source: str | None) -> str | None:
    """'path/to/file.py:12' as 'file.py:12': outputs never carry absolute paths."""
    if source is None:
        return None
    path, sep, line = source.rpartition(":")
    if not sep or not line.isdigit():
        return os.path.basename(source.replace("\\", "/"))
    return f"{os.path.basename(path.replace(chr(92), '/'))}:{line}"
