"""The pieces every HTML page and embedded picture of ours shares: Graphviz SVG made ready to sit inside HTML,
deterministic element ids, and the page around a body.

Used by the stepper, the module page, the side-by-side picture and the notebook display; nothing else writes
these, so a page's bytes change in one place or not at all.
"""

from __future__ import annotations

import hashlib
import re

from ..analyse.naming import output_title
from ..model.records import Trace
from .escape import page_text
from .style import THEMES

PROLOGUE = re.compile(r"^.*?(?=<svg\b)", re.DOTALL)  # the XML declaration and DOCTYPE before the <svg> element
_ID = re.compile(r'\bid="')
_URL = re.compile(r"url\(#")
_HREF = re.compile(r'href="#')


def without_prologue(svg: str) -> str:
    """The SVG document from `<svg` on: no XML declaration or DOCTYPE, which may not stand inside HTML."""
    return PROLOGUE.sub("", svg, count=1)


def inline_svg(svg: str, prefix: str, *, links: bool = True) -> str:
    """Graphviz SVG ready to sit inside HTML: no prologue, every element id made unique on the page by `prefix`
    (and the `url(#id)` references that follow them). `links=False` keeps `href="#..."` as it is: links to the
    page's own sections rather than to the picture's elements."""
    svg = _ID.sub(f'id="{prefix}', without_prologue(svg))
    svg = _URL.sub(f"url(#{prefix}", svg)
    if links:
        svg = _HREF.sub(f'href="#{prefix}', svg)
    return svg.strip()


def digest_id(text: str) -> str:
    """A deterministic element id from what is drawn: 'gt-' and 12 hex digits of the SHA-256 of `text`."""
    return f"gt-{hashlib.sha256(text.encode('utf-8')).hexdigest()[:12]}"


def document(title: str, style: str, body: str) -> str:
    """A complete HTML document around `body` with the stylesheet `style` (deterministic: the same arguments give
    the same bytes; no dates, no absolute paths)."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{page_text(title)}</title>\n"
        f"<style>{style}</style>\n"
        "</head>\n<body>\n" + body + "</body>\n</html>\n"
    )


def theme_style(theme: str) -> str:
    """The page's own colours for a picture drawn in `theme` (a transparent picture sits on white)."""
    colours = THEMES[theme]
    background = "#ffffff" if colours.background == "transparent" else colours.background
    colour = colours.text if colours.background != "transparent" else "#1f2328"
    return f"body{{margin:1.5em;background:{background};color:{colour}}}"


def seed_names(trace: Trace) -> str:
    """The pass's outputs for a page title: 'loss', 'output 0, output 1', or 'pass' when it has none."""
    return ", ".join(output_title(s) for s in trace.seeds) or "pass"
