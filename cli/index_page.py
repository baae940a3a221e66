"""The index page of a run's output folder: one self-contained HTML file linking every pass's outputs."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from urllib.parse import quote

import tracer
from tracer.render.html_page import document

from .outputs import display_name

_STYLE = """
:root { color-scheme: light dark; --fg: #1f2328; --bg: #ffffff; --muted: #636c76; --line: #d0d7de; --bad: #cf222e; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6edf3; --bg: #0d1117; --muted: #8d96a0; --line: #30363d; --bad: #ff7b72; }
}
body { font: 15px/1.5 system-ui, sans-serif; color: var(--fg); background: var(--bg); margin: 2rem auto;
       max-width: 72rem; padding: 0 1rem; }
h1 { font-size: 1.4rem; margin-bottom: .2rem; }
p.sub { color: var(--muted); margin-top: 0; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .45rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; }
td.num { font-variant-numeric: tabular-nums; }
code { font: 13px ui-monospace, monospace; }
.bad { color: var(--bad); }
a { color: inherit; }
.files a { margin-right: .6rem; }
img.preview { max-width: 16rem; max-height: 10rem; border: 1px solid var(--line); background: #fff; }
"""


@dataclass(frozen=True)
class PassEntry:
    """One pass as listed on the page: the trace and the files written for it (names in the folder)."""

    trace: tracer.Trace
    files: tuple[str, ...]


_FRAME = re.compile(r"-step(\d+)\.(\w+)$")


def split_frames(files: Sequence[str]) -> tuple[list[str], list[str]]:
    """(the pass's own files, its per-step frames)."""
    frames = [f for f in files if _FRAME.search(f)]
    return [f for f in files if f not in frames], frames


def _link(name: str, text: str | None = None) -> str:
    shown = text if text is not None else name.rsplit(".", 1)[-1].upper()
    return f'<a href="{escape(quote(name))}" title="{escape(name)}">{escape(shown)}</a>'


def _files(files: Sequence[str]) -> str:
    own, frames = split_frames(files)
    html = " ".join(_link(f) for f in own)
    by_format: dict[str, list[str]] = {}
    for f in frames:
        by_format.setdefault(f.rsplit(".", 1)[-1], []).append(f)
    for fmt, names in by_format.items():
        steps = " ".join(_link(n, str(int(m.group(1)))) for n in names if (m := _FRAME.search(n)))
        html += f"<br><small>{escape(fmt.upper())} steps: {steps}</small>"
    return html


def _seeds(trace: tracer.Trace) -> str:
    return ", ".join(f"{s.output_name} {list(s.shape) if s.shape else '(scalar)'}" for s in trace.seeds) or "–"


def _status(trace: tracer.Trace) -> str:
    if trace.complete:
        return "complete"
    return f'<span class="bad">incomplete: {escape(trace.error or "the pass raised")}</span>'


def short_source(source: str) -> str:
    """'/home/me/train.py:12' -> 'train.py:12': the page stays the same wherever the folder is."""
    path, _, line = source.rpartition(":")
    return display_name(f"{os.path.basename(path)}:{line}" if path else source)


def _row(entry: PassEntry) -> str:
    t = entry.trace
    preview = next((f for f in split_frames(entry.files)[0] if f.endswith(".svg")), None)
    picture = (
        f'<a href="{escape(quote(preview))}"><img class="preview" src="{escape(quote(preview))}" '
        f'alt="pass {t.index}" loading="lazy"></a>'
        if preview
        else ""
    )
    source = f"<code>{escape(short_source(t.source))}</code>" if t.source else "–"
    return (
        "<tr>"
        f'<td class="num">{t.index}</td>'
        f"<td>{escape(t.label or '')}</td>"
        f"<td>{escape(t.kind)}<br><small>{escape(_seeds(t))}</small></td>"
        f'<td class="num">{len(t.steps)}</td>'
        f"<td>{escape(', '.join(t.leaves)) or '–'}</td>"
        f"<td>{source}</td>"
        f"<td>{_status(t)}</td>"
        f'<td class="files">{_files(entry.files)}</td>'
        f"<td>{picture}</td>"
        "</tr>"
    )


def index_html(
    title: str, entries: Sequence[PassEntry], *, note: str | None = None, overview: Sequence[str] = ()
) -> str:
    """The page: the overview of every pass (the timeline chart, when written), then a table with one row per
    drawn pass (number, label, seeds, steps, leaves, status, links, preview)."""
    count = len(entries)
    sub = f"{count} backward pass{'es' if count != 1 else ''} recorded by gradtrace {escape(tracer.__version__)}"
    if overview:
        sub = (
            f"{count} backward pass{'es' if count != 1 else ''} drawn by gradtrace {escape(tracer.__version__)}; "
            "every pass recorded is in the overview"
        )
    head, tail = _frame(title, sub, note, overview)
    return head + "".join(index_row(e) for e in entries) + tail


def _overview(names: Sequence[str]) -> str:
    """The timeline of every pass: its picture, and links to it and to its numbers."""
    if not names:
        return ""
    picture = next((n for n in names if n.endswith(".svg")), None)
    links = " ".join(_link(n) for n in names)
    image = (
        f'<a href="{escape(quote(picture))}"><img src="{escape(quote(picture))}" alt="gradient norms of every '
        'pass" style="max-width:100%"></a>'
        if picture
        else ""
    )
    return f'<h2>Every pass: gradient norms over time</h2>\n<p>{image}</p>\n<p class="files">{links}</p>\n'


def live_index_head(title: str) -> str:
    """The start of the page while the script runs: `gradtrace run` appends one `index_row` per pass as it ends,
    and writes the whole page with `index_html` when the script has ended. Browsers show the unclosed table."""
    sub = (
        f"recording with gradtrace {escape(tracer.__version__)}: each pass is added as it ends (if this line is "
        "still here, the script is running or was stopped before gradtrace could finish this page)"
    )
    return _frame(title, sub, None)[0]


def index_row(entry: PassEntry) -> str:
    """One pass's row of the table, with its line end."""
    return _row(entry) + "\n"


def _frame(title: str, sub: str, note: str | None, overview: Sequence[str] = ()) -> tuple[str, str]:
    """The page around its rows: (everything before the first row, everything after the last)."""
    marker = "\x00rows\x00"
    extra = (f'<p class="sub">{escape(note)}</p>' if note else "") + _overview(overview)
    page = document(
        f"gradtrace: {title}",
        _STYLE,
        f"<h1>gradtrace: {escape(title)}</h1>\n"
        f'<p class="sub">{sub}</p>\n{extra}\n'
        "<table>\n<thead><tr><th>pass</th><th>label</th><th>kind and seeds</th><th>steps</th><th>leaves</th>"
        "<th>started at</th><th>status</th><th>files</th><th>picture</th></tr></thead>\n"
        f"<tbody>\n{marker}</tbody>\n</table>\n",
    )
    head, tail = page.split(marker)
    return head, tail
