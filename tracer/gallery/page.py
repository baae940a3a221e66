"""The gallery's index.html: every entry with its title, explanation, script, error and pictures, on one offline page.

The page is deterministic (no dates, no absolute paths) and self-contained apart from the pictures it links with
relative paths, so it works from the file system and byte-compares between builds.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from ..model.format import inline
from ..model.records import TensorInfo
from ..model.version import __version__
from ..render.escape import page_text, visible
from ..render.highlight import python_html
from ..render.html_page import document
from .entries import Entry, Pass, ShownError, Topic

PRECISION = 4
MAX_ELEMENTS = 8  # captions print tensors up to this size, larger ones as shape and norm


@dataclass(frozen=True)
class PassFiles:
    """Where one pass's files are, relative to the page."""

    svg: str
    dot: str
    stepper: str | None  # the step-by-step page of this pass's graph; None: too large for one
    stepper_pass: int | None = None  # the pass that page steps through (an earlier one over the same graph)


@dataclass(frozen=True)
class EntryPage:
    """One entry and the relative paths the page links for it."""

    entry: Entry
    script: str  # the script, relative to the page
    passes: tuple[PassFiles, ...]


STYLE = """
:root { color-scheme: light dark; --fg: #1f2328; --bg: #ffffff; --muted: #59636e; --line: #d0d7de;
        --panel: #f6f8fa; --bad: #cf222e; --bad-bg: #ffebe9; --k: #cf222e; --s: #0a3069; --c: #6e7781;
        --n: #0550ae; --d: #8250df; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6edf3; --bg: #0d1117; --muted: #9198a1; --line: #30363d; --panel: #161b22; --bad: #ff7b72;
          --bad-bg: #2d1214; --k: #ff7b72; --s: #a5d6ff; --c: #8b949e; --n: #79c0ff; --d: #d2a8ff; }
}
* { box-sizing: border-box; }
body { font: 16px/1.55 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: var(--fg);
       background: var(--bg); margin: 0 auto; max-width: 96rem; padding: 1.5rem 1.25rem 4rem; }
h1 { font-size: 1.8rem; margin: 0 0 .4rem; }
h2 { font-size: 1.4rem; margin: 3rem 0 .3rem; padding-top: .6rem; border-top: 2px solid var(--line); }
h3 { font-size: 1.12rem; margin: 0 0 .4rem; }
p { margin: .35rem 0 .6rem; }
a { color: inherit; }
code, pre { font: 13.5px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
p code, li code, figcaption code { background: var(--panel); padding: .05rem .25rem; border-radius: 4px; }
.lead { max-width: 62rem; }
.muted { color: var(--muted); }
nav.toc { columns: 2 22rem; column-gap: 2.5rem; margin: 1.2rem 0; }
nav.toc > ol { margin: 0; padding-left: 1.4rem; }
nav.toc li { break-inside: avoid; }
nav.toc ol ol { padding-left: 1.1rem; margin: .1rem 0 .6rem; font-size: .94rem; }
.topic-intro { max-width: 62rem; color: var(--muted); }
article { margin: 1.6rem 0 2.2rem; }
article h3 a.anchor { color: var(--muted); text-decoration: none; margin-left: .35rem; font-weight: normal; }
.entry { display: flex; flex-wrap: wrap; gap: 1.2rem 2rem; align-items: flex-start; }
.entry .text { flex: 1 1 30rem; max-width: 44rem; min-width: 0; }
.entry .pictures { flex: 1 1 34rem; min-width: 0; display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; }
pre.code { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: .7rem .85rem;
           overflow-x: auto; margin: .4rem 0 0; }
.file { font-size: .9rem; margin-bottom: 0; }
details.checks { margin: .5rem 0 0; font-size: .9rem; } details.checks summary { cursor: pointer; color: var(--muted); }
.k { color: var(--k); } .s { color: var(--s); } .c { color: var(--c); font-style: italic; }
.n { color: var(--n); } .d { color: var(--d); font-weight: 600; } .b { color: var(--n); }
figure { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: .5rem; background: var(--panel); }
/* Pictures at their own size, never shrunk (their smallest text is 12 px there): a wide or tall one scrolls inside
   its frame, and a click opens the full-size SVG. */
figure { min-width: 0; max-width: 100%; flex: 0 1 auto; }
figure .frame { overflow: auto; max-height: 85vh; }
figure figcaption { width: 0; min-width: 100%; } /* as wide as the picture: the caption never widens its figure */
figure img { display: block; max-width: none; width: auto; height: auto; margin: 0 auto; background: #ffffff;
             border-radius: 3px; }
figcaption { font-size: .88rem; margin-top: .45rem; overflow-wrap: anywhere; }
figcaption .links > * { margin-right: .7rem; }
.error { border: 1px solid var(--bad); background: var(--bad-bg); border-radius: 6px; padding: .6rem .8rem; }
.error h4 { margin: 0 0 .3rem; font-size: .95rem; color: var(--bad); }
.error pre { white-space: pre-wrap; margin: .2rem 0 .5rem; }
.error .note { font-size: .92rem; margin: .3rem 0 0; }
.bad { color: var(--bad); }
.error .beside { font-size: .85rem; color: var(--muted); margin: .5rem 0 0; }
"""


def _text(text: str) -> str:
    """Prose with `code` spans: escaped, backticks turned into <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(visible(text, layout=True), quote=False))


def _href(path: str) -> str:
    return html.escape(url_path(path), quote=True)


def url_path(path: str) -> str:
    """A relative path as a URL path. A file name that was not UTF-8 on disk (held with surrogateescape) links to
    its bytes; any other lone surrogate, which no file name holds, is percent-encoded rather than raising."""
    try:
        return quote(path, errors="surrogateescape")
    except UnicodeEncodeError:
        return quote(path, errors="surrogatepass")


def anchor(entry_id: str) -> str:
    """A fragment id for an entry or topic: '01-shapes/02-shape-1' -> 'e-01-shapes--02-shape-1'."""
    ident = "e-" + entry_id.replace("/", "--")
    # Letters, digits, '-' and '_' as they are (every entry of the gallery); anything else as _hex_, so that an
    # odd file name still gives an id that is valid, unique and safe in an attribute and a link.
    return re.sub(r"[^A-Za-z0-9_-]", lambda m: f"_{ord(m.group(0)):x}_", ident)


def _short(info: TensorInfo | None) -> str:
    return inline(info, PRECISION, MAX_ELEMENTS)


def _caption(p: Pass, files: PassFiles) -> str:
    t = p.trace
    head = f"<b>pass {t.index}</b>"
    if p.line is not None and p.code is not None:
        head += f" · line {p.line}: <code>{page_text(p.code)}</code>"
    parts = [head]
    seeds = [f"{page_text(s.output_name)}: v = <code>{page_text(_short(s.v))}</code>" for s in t.seeds]
    if seeds:
        parts.append("seed " + ", ".join(seeds))
    grads = [
        f"<code>{page_text(leaf.name)}</code> gets <code>{page_text(_short(leaf.grad))}</code>"
        for leaf in t.leaves.values()
        if leaf.grad is not None
    ]
    if grads and len(grads) <= 3:
        parts.append("; ".join(grads))
    elif grads:
        parts.append(f"{len(grads)} tensors get gradients")
    if not t.complete:
        parts.append('<span class="bad">incomplete: the pass raised</span>')
    links = []
    if files.stepper is not None and files.stepper_pass in (None, t.index):
        links.append(f'<a href="{_href(files.stepper)}">step through it ({len(t.steps)} steps)</a>')
    elif files.stepper is not None:
        links.append(
            f'<a href="{_href(files.stepper)}">step through pass {files.stepper_pass}</a> '
            f'<span class="muted">(the same graph, {len(t.steps)} steps)</span>'
        )
    else:
        links.append(f'<span class="muted">{len(t.steps)} steps</span>')
    links.append(f'<a href="{_href(files.svg)}">SVG</a>')
    links.append(f'<a href="{_href(files.dot)}">DOT</a>')
    parts.append(f'<span class="links">{" ".join(links)}</span>')
    return "<br>".join(parts)


def _figure(p: Pass, files: PassFiles) -> str:
    seeds = ", ".join(s.output_name for s in p.trace.seeds)
    alt = f"pass {p.trace.index}: {p.trace.kind} of {seeds}, {len(p.trace.steps)} steps"
    return (
        f'<figure class="pass" data-pass="{p.trace.index}">'
        f'<div class="frame"><a href="{_href(files.svg)}">'
        f'<img src="{_href(files.svg)}" alt="{page_text(alt)}"></a></div>'
        f"<figcaption>{_caption(p, files)}</figcaption></figure>"
    )


def _error(error: ShownError) -> str:
    where = ""
    if error.line is not None and error.code is not None:
        where = f" at line {error.line}: <code>{page_text(error.code)}</code>"
    notes = "".join(f'<p class="note">{page_text(n, layout=True)}</p>' for n in error.notes)
    return (
        '<div class="error" role="note">'
        f"<h4>{page_text(error.type)}{where}</h4>"
        f"<pre>{page_text(error.message, layout=True)}</pre>{notes}"
        '<p class="beside">The pictures show the passes the script made, the call that works today among them.</p>'
        "</div>"
    )


def _cells(entry: Entry) -> str:
    """The tutorial cells the entry reproduces, after the script's name."""
    if not entry.tutorial:
        return ""
    return ' <span class="muted">· tutorial cells ' + ", ".join(page_text(c.cell) for c in entry.tutorial) + "</span>"


def _checks(checks: str) -> str:
    """The script's checks, apart from its lesson and folded away: the page leads with the lines that matter."""
    if not checks:
        return ""
    lines = sum(1 for line in checks.splitlines() if line.strip())
    return (
        f'<details class="checks"><summary>the checks ({lines} lines): closed form, the tutorial\'s printed numbers, '
        f'torch\'s own gradients</summary><pre class="code"><code>{python_html(checks)}</code></pre></details>'
    )


def _article(page: EntryPage) -> str:
    e = page.entry
    s = e.script
    ident = anchor(e.id)
    paragraphs = "".join(f"<p>{_text(p)}</p>" for p in s.explanation)
    pictures = _error(e.error) if e.error is not None else ""
    pictures += "".join(_figure(p, f) for p, f in zip(e.passes, page.passes, strict=True))
    return (
        f'<article id="{ident}" data-entry="{page_text(e.id)}">\n'
        f'<h3>{_text(s.title)}<a class="anchor" href="#{ident}" aria-label="link to this entry">#</a></h3>\n'
        '<div class="entry">\n<div class="text">'
        f"{paragraphs}"
        f'<p class="file"><a href="{_href(page.script)}">{page_text(page.script)}</a>{_cells(e)}</p>'
        f'<pre class="code"><code>{python_html(s.code)}</code></pre>{_checks(s.checks)}'
        "</div>\n"
        f'<div class="pictures">{pictures}</div>\n'
        "</div>\n</article>"
    )


def by_topic(pages: Sequence[EntryPage]) -> list[tuple[Topic, list[EntryPage]]]:
    grouped: list[tuple[Topic, list[EntryPage]]] = []
    for p in pages:
        if not grouped or grouped[-1][0] != p.entry.script.topic:
            grouped.append((p.entry.script.topic, []))
        grouped[-1][1].append(p)
    return grouped


def index_html(pages: Sequence[EntryPage], *, notebook: str | None = None) -> str:
    """The whole page; `notebook` is the relative path of the gallery's notebook when there is one."""
    topics = by_topic(pages)
    passes = sum(len(p.entry.passes) for p in pages)
    toc = "\n".join(
        f'<li><a href="#{anchor(topic.slug)}">{_text(topic.title)}</a><ol>'
        + "".join(f'<li><a href="#{anchor(p.entry.id)}">{_text(p.entry.script.title)}</a></li>' for p in entries)
        + "</ol></li>"
        for topic, entries in topics
    )
    sections = "\n".join(
        f'<section id="{anchor(topic.slug)}">\n<h2>{_text(topic.title)}</h2>\n'
        f'<p class="topic-intro">{_text(topic.intro)}</p>\n' + "\n".join(_article(p) for p in entries) + "\n</section>"
        for topic, entries in topics
    )
    notebook_link = (
        f' The same cases as a notebook: <a href="{_href(notebook)}">{page_text(notebook)}</a>.' if notebook else ""
    )
    title = "gradtrace gallery: the autograd tutorials, pass by pass"
    return document(
        title,
        STYLE,
        "<header>\n"
        "<h1>The gradtrace gallery</h1>\n"
        '<p class="lead">Every case of five autograd tutorials as a short script, run and recorded by gradtrace: '
        f"{len(pages)} entries in {len(topics)} topics, {passes} backward passes. Each script checks its numbers "
        "against the tutorial's closed form and against torch's own gradients. Each picture shows one backward "
        "pass: the seed v at the top, every node with the v it receives, its local Jacobian J and the vᵀJ it sends "
        "on, down to what lands in each <code>.grad</code>. Click a picture for the full-size SVG (hover its nodes "
        "for every detail), or step through the pass one vector-Jacobian step at a time.</p>\n"
        f'<p class="muted">Drawn by gradtrace {page_text(__version__)}. Rebuild with <code>./dev gallery</code> '
        f"(or <code>gradtrace gallery</code>).{notebook_link}</p>\n"
        f'<nav class="toc" aria-label="contents">\n<ol>\n{toc}\n</ol>\n</nav>\n</header>\n'
        f"<main>\n{sections}\n</main>\n",
    )
