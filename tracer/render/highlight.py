"""Python source as escaped HTML with a few colour classes (keywords, strings, comments, numbers, names defined)."""

from __future__ import annotations

import html
import io
import keyword
import token
import tokenize

from .escape import visible

# The class names the page's CSS colours: k keyword, s string, c comment, n number, d a name being defined,
# b a builtin constant.
_CONSTANTS = frozenset({"True", "False", "None"})


def python_html(code: str) -> str:
    """`code` escaped for <pre>, its tokens wrapped in <span class="k|s|c|n|d|b">; the text itself is unchanged.

    Code that does not tokenize (it never should: the scripts run) comes back escaped and unhighlighted.
    """
    lines = code.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    spans: list[tuple[int, int, str]] = []
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return _text(code)
    defining = False
    for tok in tokens:
        cls = _class(tok, defining)
        defining = tok.type == token.NAME and tok.string in ("def", "class")
        if cls is None:
            continue
        start = offsets[tok.start[0] - 1] + tok.start[1]
        end = offsets[tok.end[0] - 1] + tok.end[1]
        spans.append((start, end, cls))
    out, position = [], 0
    for start, end, cls in spans:
        out.append(_text(code[position:start]))
        out.append(f'<span class="{cls}">{_text(code[start:end])}</span>')
        position = end
    out.append(_text(code[position:]))
    return "".join(out)


def _text(code: str) -> str:
    """Escaped for <pre>; characters no one can see or XML cannot hold shown as escapes (see escape.visible)."""
    return html.escape(visible(code, layout=True), quote=False)


def _class(tok: tokenize.TokenInfo, defining: bool) -> str | None:
    if tok.type == token.COMMENT:
        return "c"
    if tok.type == token.STRING or tok.type in _FSTRING_PARTS:
        return "s"
    if tok.type == token.NUMBER:
        return "n"
    if tok.type == token.NAME:
        if defining:
            return "d"
        if tok.string in _CONSTANTS:
            return "b"
        if keyword.iskeyword(tok.string):
            return "k"
    return None


# Python 3.12 splits f-strings into several tokens; colour all of them as string.
_FSTRING_PARTS = frozenset(
    getattr(token, name) for name in ("FSTRING_START", "FSTRING_MIDDLE", "FSTRING_END") if hasattr(token, name)
)
