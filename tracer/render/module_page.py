"""The module view as a self-contained HTML page: the graph with the gradient-norm profile beside it, and every
box a link to the drawing of its inside.

Opening a box is `focus=` on its module (the paths that feed it, that module one level deeper); opening a run of
repeated blocks draws them one by one (repeats='expand'). The insides are drawn ahead, breadth first, while the
page stays small: a whole level of insides is added only if the page then holds at most MAX_VIEWS drawings.
Navigation is plain links to #fragments and CSS :target — no script, no network — so it works offline, in any
browser, and the browser's back button steps back.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..model.errors import DrawingTooLargeError
from ..model.records import Trace
from .beside_chart import chart_beside
from .escape import page_text
from .graphviz_call import render_dot
from .html_page import digest_id, document, inline_svg, seed_names, theme_style
from .options import RenderOptions
from .picture import Picture, plan

MAX_VIEWS = 64  # drawings on one page (the main view and the insides it links to)

CSS = """
.gt-modules{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;line-height:1.4}
.gt-modules h2{font-size:1.1em;margin:.2em 0}
.gt-modules .gt-hint,.gt-modules .gt-call{color:#57606a;font-size:.9em;margin:.2em 0 .6em}
.gt-modules code{font-size:.95em}
.gt-modules .gt-row{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}
.gt-modules figure{margin:0}
.gt-modules figcaption{font-size:.9em;color:#57606a;margin-bottom:.3em}
.gt-modules svg{max-width:100%;height:auto}
.gt-modules .gt-panel{display:none}
.gt-modules .gt-panel:target{display:block}
.gt-modules:has(.gt-panel:target) .gt-main{display:none}
.gt-modules nav a{margin-right:1em}
""".strip()


@dataclass(frozen=True)
class _View:
    """One drawing of the page: which focus and repeats, and the view that links to it."""

    anchor: str  # element id of its section
    focus: str | None
    repeats: str
    parent: str | None  # anchor of the view linking here
    title: str
    call: str  # the Python call that draws it


def _call(focus: str | None, repeats: str, depth: int | None) -> str:
    args = ["view='modules'"]
    if depth is not None:
        args.append(f"depth={depth}")
    if focus is not None:
        args.append(f"focus={focus!r}")
    if repeats != "compact":
        args.append(f"repeats={repeats!r}")
    flags = " ".join(
        [
            "--view modules",
            *([f"--depth {depth}"] if depth is not None else []),
            *([f"--focus {focus}"] if focus is not None else []),
            *([f"--repeats {repeats}"] if repeats != "compact" else []),
        ]
    )
    return f"trace.svg({', '.join(args)}) · CLI: {flags}"


def page(trace: Trace, opts: RenderOptions) -> str:
    """The complete HTML document (deterministic: the same trace and options give the same bytes)."""
    title = f"gradtrace: module view of the backward of {seed_names(trace)}"
    return document(title, theme_style(opts.theme), fragment(trace, opts))


def fragment(trace: Trace, opts: RenderOptions, uid: str | None = None) -> str:
    """The page's body as an embeddable fragment; every element id starts with `uid`."""
    main_opts = dataclasses.replace(opts, view="modules")
    main = plan(trace, main_opts)
    main.check_size()
    if uid is None:
        uid = digest_id(main.dot() + repr(opts))
    views, pictures, links = _views(trace, main_opts, main, uid)

    texts = [p.dot(links.get(v.anchor)) for v, p in zip(views, pictures, strict=True)]
    with ThreadPoolExecutor(max_workers=4) as pool:  # each drawing is its own dot process
        svgs = list(pool.map(lambda t: render_dot(t, "svg").decode("utf-8"), texts))
    out = [f'<div class="gt-modules" id="{uid}">', f"<style>{CSS}</style>"]
    for k, (view, svg) in enumerate(zip(views, svgs, strict=True)):
        body = inline_svg(svg, f"{view.anchor}-", links=False)
        if k == 0:
            out.append(_main_section(view, body, chart_beside(pictures[0])))
        else:
            out.append(_panel(view, body, uid))
    out.append("</div>")
    return "\n".join(out) + "\n"


def _views(
    trace: Trace, opts: RenderOptions, main: Picture, uid: str
) -> tuple[list[_View], list[Picture], dict[str, dict[str, str]]]:
    """The main view and, level by level, the insides its boxes lead to; links per view: box id -> #anchor."""
    first = _View(
        f"{uid}-main", opts.focus, opts.repeats, None, "Module view", _call(opts.focus, opts.repeats, opts.depth)
    )
    views, pictures = [first], [main]
    anchors: dict[tuple[str | None, str], str] = {(opts.focus, opts.repeats): first.anchor}
    links: dict[str, dict[str, str]] = {}
    level = [0]
    while level:
        wanted: list[tuple[int, str, tuple[str | None, str], str]] = []  # (from view, box id, target key, title)
        for index in level:
            picture = pictures[index]
            mv = picture.modules
            assert mv is not None
            for b in mv.boxes:
                if b.openable:
                    wanted.append((index, b.key, (b.path, opts.repeats), f"Inside {b.path} ({b.cls})"))
            for r in mv.runs:  # every run leads to the main view with repeated blocks drawn one by one
                title = "Module view, repeated blocks drawn one by one"
                wanted.append((index, r.key, (opts.focus, "expand"), title))
        fresh: dict[tuple[str | None, str], tuple[int, str]] = {}
        for index, _, key, title in wanted:
            if key not in anchors and key not in fresh:
                fresh[key] = (index, title)
        made: list[tuple[_View, Picture]] = []
        for (focus, repeats), (index, title) in fresh.items():
            try:
                picture = plan(trace, dataclasses.replace(opts, focus=focus, repeats=repeats))
                picture.check_size()
            except DrawingTooLargeError:
                continue  # too large to draw: that box keeps its tooltip, which says how to draw it
            anchor = f"{uid}-p{len(views) + len(made)}"
            call = _call(focus, repeats, opts.depth)
            made.append((_View(anchor, focus, repeats, views[index].anchor, title, call), picture))
        level = []
        if made and len(views) + len(made) <= MAX_VIEWS:  # a whole level, or none of it
            level = list(range(len(views), len(views) + len(made)))
            for view, picture in made:
                anchors[(view.focus, view.repeats)] = view.anchor
                views.append(view)
                pictures.append(picture)
        for index, box, key, _ in wanted:
            if key in anchors:
                links.setdefault(views[index].anchor, {})[box] = f"#{anchors[key]}"
    return views, pictures, links


def _main_section(view: _View, body: str, chart_svg: str) -> str:
    chart = inline_svg(chart_svg, f"{view.anchor}-chart-", links=False)
    return (
        f'<section class="gt-view gt-main" id="{view.anchor}">\n'
        f"<h2>{page_text(view.title)}</h2>\n"
        '<p class="gt-hint">Each box is one module: the gradient its outputs received (grad in), what it sent to '
        "its inputs (grad out) and its parameters' gradient norms. Click a box to open it; hover any box or edge "
        "for every number.</p>\n"
        f'<p class="gt-call"><code>{page_text(view.call)}</code></p>\n'
        '<div class="gt-row">\n'
        f'<figure class="gt-graph">{body}</figure>\n'
        '<figure class="gt-profile"><figcaption>Gradient norm ‖v‖ arriving at each backward step, in execution '
        f"order (hover a point for its node)</figcaption>{chart}</figure>\n"
        "</div>\n</section>"
    )


def _panel(view: _View, body: str, uid: str) -> str:
    back = ""
    if view.parent is not None and view.parent != f"{uid}-main":
        back = f'<a href="#{view.parent}">↑ back one level</a>'
    return (
        f'<section class="gt-view gt-panel" id="{view.anchor}">\n'
        f'<nav><a href="#{uid}-main">← module view</a>{back}</nav>\n'
        f"<h2>{page_text(view.title)}</h2>\n"
        f'<p class="gt-call"><code>{page_text(view.call)}</code></p>\n'
        f"<figure>{body}</figure>\n</section>"
    )
