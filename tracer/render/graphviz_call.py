"""Running Graphviz's `dot` on DOT text (the one subprocess of the drawing), and the hint when it is missing."""

from __future__ import annotations

import re

import graphviz

from ..model.errors import GradtraceError, GraphvizMissingError

INSTALL_HINT = (
    "Install Graphviz: `sudo apt-get install graphviz` (Debian/Ubuntu), `sudo dnf install graphviz` (Fedora), "
    "`brew install graphviz` (macOS), `winget install graphviz` (Windows) or `conda install -c conda-forge graphviz` "
    "(conda), then make sure `dot -V` works in a new shell."
)


_TOOLTIP = re.compile(r'<title>[^<]*</title>\n(<g id="a_[^"]*"><a(?: xlink:href="[^"]*")?) xlink:title="([^"]*)">')
_COMMENT = re.compile(r"<!--.*?-->\n?", re.DOTALL)


def render_dot(text: str, fmt: str) -> bytes:
    """Run Graphviz's dot on DOT text; SVG gets each element's full details as its <title> tooltip."""
    try:
        data: bytes = graphviz.pipe("dot", fmt, text.encode("utf-8"), quiet=True)
    except graphviz.ExecutableNotFound:
        raise GraphvizMissingError(
            f"Graphviz's `dot` program is needed to draw {fmt.upper()} and was not found on PATH. {INSTALL_HINT} "
            "Without it, trace.to_dot() and saving .dot or .json still work."
        ) from None
    except graphviz.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode("utf-8", "replace").strip()
        raise GradtraceError(f"Graphviz's dot could not draw this picture ({fmt}): {detail}") from None
    if fmt != "svg":
        return data
    svg_text = data.decode("utf-8")
    # Graphviz puts the node's DOT name in <title> (browsers show it on hover) and the tooltip on an inner
    # <a>; moving the tooltip into <title> shows the details in every browser and viewer, and once only.
    svg_text = _TOOLTIP.sub(lambda m: f"<title>{m.group(2)}</title>\n{m.group(1)}>", svg_text)
    svg_text = _COMMENT.sub("", svg_text)
    return svg_text.encode("utf-8")
