"""The HTML-like label of each kind of node: seed, backward step (v, J, vᵀJ), leaf, cut input, and the legend."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable

from ..analyse.naming import output_title
from ..analyse.slice_write import slice_write
from ..model.format import has_values, inline, number, shape_text
from ..model.records import Jacobian, Leaf, NoteKind, Seed, Step, TensorInfo
from ..model.why_records import StubCause
from .escape import basename_source, label_text, plain_label
from .html_label import Ink, cell, font, row, table, tensor, text
from .scene import Scene, State, total_norm
from .style import Theme, tick_labels

SIZE = 10.0  # point size of values
SMALL = 9.0  # the smallest text of a picture: 9 points, 12 pixels at 100% (tests/test_picture_readability.py)
NOTE_CHARS = 72  # longer notes are cut in the label (the tooltip has them in full)
WRAP_CHARS = 64  # long text (an error message) wraps onto lines of about this many characters ...
WRAP_LINES = 4  # ... and at most this many of them (the tooltip has it whole): a node stays narrow
MAX_PARTS = 6  # accumulation parts listed before '… n more'
# The ring of inactive nodes in step frames. Not the page colour: a painted ring can cover the node's own
# border where browsers round positions differently.
RING_OFF = "transparent"


def ink(theme: Theme, state: State, border: str) -> Ink:
    """Colours of a node in its state: pending is pale all over, not-run grey, active in the highlight."""
    if state == "pending":
        f = theme.faint
        return Ink(f, f, f, f, theme.panel, theme.panel, f, theme.panel, f, f)
    if state == "unrun":
        n = theme.none
        return Ink(n, n, theme.faint, n, theme.panel, theme.panel, theme.faint, theme.text, n, n)
    return Ink(
        theme.text,
        theme.muted,
        theme.faint,
        theme.active if state == "active" else border,
        theme.panel,
        theme.header,
        theme.active if state == "active" else theme.badge,
        theme.badge_text,
        theme.warning,
        theme.none,
    )


def _frame(rows: list[str], ink: Ink, *, state: State, dashed: bool = False, ring: str | None = None) -> str:
    """The node's table. In step frames (`ring` set) every node sits in a 3-point ring, coloured only for the
    active step, so all frames have the same node sizes and Graphviz gives them the same layout."""
    style = ' STYLE="dashed"' if dashed else ""
    body = (
        f'<TABLE BORDER="1" CELLBORDER="0" CELLSPACING="0" CELLPADDING="3" COLOR="{ink.border}" '
        f'BGCOLOR="{ink.panel}"{style}>' + "".join(rows) + "</TABLE>"
    )
    if ring is None:
        return body
    colour = ink.border if state == "active" else ring
    ring_table = f'<TABLE BORDER="3" CELLBORDER="0" CELLSPACING="0" CELLPADDING="0" COLOR="{colour}">'
    return f"{ring_table}<TR><TD>{body}</TD></TR></TABLE>"


def _header(badge: str, title: str, ink: Ink) -> str:
    return row(
        cell(text(badge, ink.badge_text, bold=True), align="CENTER", bgcolor=ink.badge),
        cell(text(title, ink.text, bold=True, size=11), bgcolor=ink.header),
    )


def _wide(html: str) -> str:
    return row(cell(html, colspan=2))


def _pair(name: str, value_html: str, ink: Ink) -> str:
    return row(cell(text(name, ink.muted, size=SIZE - 1), align="RIGHT"), cell(value_html, balign="LEFT"))


def wrap(words: str, colour: str, *, size: float) -> str:
    """Long text as label html on lines of about WRAP_CHARS characters, WRAP_LINES at most."""
    lines = wrapped_lines(words)
    if len(lines) == 1:
        return text(lines[0], colour, size=size)
    return '<BR ALIGN="LEFT"/>'.join(text(line, colour, size=size) for line in lines) + '<BR ALIGN="LEFT"/>'


def wrapped_lines(words: str) -> list[str]:
    """Long text as lines of at most WRAP_CHARS characters, WRAP_LINES of them at most (the last then ends in '…')."""
    lines = textwrap.wrap(words, WRAP_CHARS, break_long_words=True, break_on_hyphens=False) or [""]
    if len(lines) > WRAP_LINES:
        lines = lines[:WRAP_LINES]
        lines[-1] = lines[-1][: WRAP_CHARS - 1] + "…"
    return lines


def _cut(note: str) -> str:
    return note if len(note) <= NOTE_CHARS else note[: NOTE_CHARS - 1] + "…"


class Labels:
    """Builds node labels for one Scene."""

    def __init__(self, scene: Scene) -> None:
        self.scene = scene
        self.opts = scene.opts
        self.theme = scene.theme
        # In step frames, a transparent ring around every node that turns into the highlight on the active one.
        self.ring = None if scene.opts.step is None else RING_OFF

    def value(self, info: TensorInfo | None, ink: Ink) -> str:
        o = self.opts
        return tensor(info, ink, precision=o.precision, max_elements=o.max_elements, stats=o.stats, size=SIZE)

    def border(self, infos: tuple[TensorInfo | None, ...], problems: bool) -> str:
        if problems:
            return self.theme.warning
        norm = total_norm(infos)
        return self.scene.scale.colour(norm, norm is None or math.isfinite(norm))

    # -- seed

    def seed(self, s: Seed) -> str:
        state: State = self.scene.time_state(0)
        k = ink(self.theme, state, self.border((s.v,), False))
        output = output_title(s)
        rows = [
            _header("seed", f"v for {output}", k),
            _pair("output", text(f"{output}  {shape_text(s.shape)} {s.dtype}", k.text, size=SIZE), k),
            _pair("v", self.value(s.v, k), k),
        ]
        if s.implicit:
            rows.append(_wide(text("gradient=None: torch used v = 1", k.muted, size=SIZE - 1)))
        return "<" + _frame(rows, k, state=state, ring=self.ring) + ">"

    # -- backward node

    def step(self, n: Step) -> str:
        state = self.scene.state(n)
        problems = self.scene.problems(n) if n.executed else []
        k = ink(self.theme, state, self.border(n.v, bool(problems)))
        badge = f"step {n.id}" if n.executed else "not run"
        leaf = self.scene.trace.leaves.get(n.leaf) if n.leaf is not None else None
        rows = [_header(badge, n.name, k), _wide(self._origin(n, k))]
        written = self._written(n, k)
        if written is not None:
            rows.append(_wide(written))
        if leaf is not None:
            rows += self._leaf_head(leaf, k)
        if n.executed:
            rows += self._slots(n, k)
            if leaf is None:
                rows += self._body(n, k)
        if leaf is not None:
            rows += self._leaf_rows(leaf, k)
        for extra in self.scene.extra_leaves.get(n.id, ()):
            rows += self._leaf_head(extra, k)
            rows += self._leaf_rows(extra, k)
        rows += [_wide(wrap(p, k.warning if state != "pending" else k.faint, size=SIZE - 1)) for p in problems]
        if n.note is not None and n.note_kind is not NoteKind.RAISED:
            rows.append(_wide(wrap(n.note, k.muted, size=SIZE - 1)))
        return "<" + _frame(rows, k, state=state, dashed=not n.executed, ring=self.ring) + ">"

    def _written(self, n: Step, k: Ink) -> str | None:
        """A CopySlices node: which elements it wrote, as read from the pass, or that this is not known."""
        write = slice_write(n)
        if write is None:
            return None
        where = write.index_text
        if where is not None:
            how = "read from J" if write.source == "J" else "read from the gradients"
            return text(f"wrote {where} of {shape_text(write.shape or ())} ({how})", k.muted, size=SIZE - 1)
        size = f"; the written value is {shape_text(write.value_shape)}" if write.value_shape is not None else ""
        return wrap(f"which elements were written is not known (torch does not expose it){size}", k.muted, size=SMALL)

    def node_attrs(self, n: Step) -> list[tuple[str, str]]:
        """The DOT attributes that draw a backward node: an HTML table, or in compact detail a plain box."""
        if not self.scene.compact:
            return [("label", self.step(n))]
        return self._compact(n)

    def _compact(self, n: Step) -> list[tuple[str, str]]:
        """Large graphs: a plain-text box with the name and one line of norms (Graphviz lays out plain labels
        faster than tables, which is what keeps a 2,000-node picture as quick as torchviz's)."""
        state = self.scene.state(n)
        problems = self.scene.problems(n) if n.executed else []
        k = ink(self.theme, state, self.border(n.v, bool(problems)))
        p = self.opts.precision
        leaf = self.scene.trace.leaves.get(n.leaf) if n.leaf is not None else None
        badge = f"step {n.id}" if n.executed else "not run"
        if leaf is not None:
            grad = leaf.grad.norm if leaf.grad is not None else None
            line = f"{leaf.name} {shape_text(leaf.shape)} · ‖grad‖ {_norm(grad, p)}"
        elif n.executed:
            line = f"‖v‖ {_norms(n.v, p)} → ‖vᵀJ‖ {_norms(n.vjp, p)}"
        else:
            line = n.op
        lines = [f"{badge} · {n.name}", line, *(wrapped_lines(problems[0]) if problems else [])]
        style = "rounded,filled" + (",dashed" if not n.executed else "")
        colour = k.warning if problems and state != "pending" else k.text
        return [
            ("label", plain_label(lines)),
            ("shape", "box"),
            ("style", f'"{style}"'),
            ("fillcolor", f'"{k.panel}"'),
            ("color", f'"{k.border}"'),
            ("fontcolor", f'"{colour}"'),
            ("penwidth", "3" if state == "active" else "1"),
            ("margin", '"0.08,0.03"'),
            ("fontsize", "9"),
        ]

    def _origin(self, n: Step, k: Ink) -> str:
        parts = [f"forward: {n.op}"]
        source = basename_source(n.source)
        if source:
            parts.append(source)
        # A node saving several small tensors can describe a long call: the tooltip has it whole.
        return text(_cut(" · ".join(parts)), k.muted, size=SIZE - 1)

    def _slots(self, n: Step, k: Ink) -> list[str]:
        """Accumulation points: a slot fed by several edges shows each part and the sum the node received."""
        rows: list[str] = []
        for slot, v in enumerate(n.v):
            parts = self.scene.incoming.get((n.id, slot), [])
            if len(parts) < 2:
                continue
            name = "v" if len(n.v) == 1 else f"v[{slot}]"
            rows.append(_wide(text(f"{name} = sum of {len(parts)} incoming gradients", k.muted, size=SIZE - 1)))
            for i, part in enumerate(parts[:MAX_PARTS]):
                rows.append(_pair(("from " if i == 0 else "+ ") + self.scene.origin(part), self.value(part.grad, k), k))
            if len(parts) > MAX_PARTS:
                rows.append(_pair("+", text(f"… {len(parts) - MAX_PARTS} more", k.muted, size=SIZE), k))
            rows.append(_pair(f"= {name}", self.value(v, k), k))
        return rows

    def _fan_in(self, n: Step, slot: int) -> bool:
        return len(self.scene.incoming.get((n.id, slot), [])) > 1

    def _body(self, n: Step, k: Ink) -> list[str]:
        grid = self._vjp_grid(n, k)
        if grid is not None:
            j = n.jacobian
            assert j is not None
            return [_wide(grid), _wide(self._axes(n, j, k))] if _has_matrix_side(j) else [_wide(grid)]
        rows = []
        for slot, v in enumerate(n.v):
            if not self._fan_in(n, slot):
                rows.append(_pair("v" if len(n.v) == 1 else f"v[{slot}]", self.value(v, k), k))
        if not n.v:
            # A node that raised never reported its v: show what was sent to it instead.
            for (node_id, slot), parts in sorted(self.scene.incoming.items()):
                if node_id == n.id:
                    for part in parts:
                        rows.append(_pair(f"v[{slot}] from {self.scene.origin(part)}", self.value(part.grad, k), k))
        j = n.jacobian
        if self.opts.jacobian and j is not None:
            r, c = j.size
            limit = self.opts.max_elements
            if max(r, c) > limit:
                why = f"more than max_elements={limit}"
            elif _flat(n.v, j.rows) is None or _flat(n.vjp, j.cols) is None:
                why = "the values of v or vᵀJ were not kept"
            else:
                why = "too wide to read in a node"
            rows.append(_pair("J", text(f"{r}×{c} (not drawn: {why})", k.muted, size=SIZE - 1), k))
        for e, _ in enumerate(n.edges):
            g = n.vjp[e] if e < len(n.vjp) else None
            where = self.scene.target_text(n, e)
            if n.edges[e].target is None and g is None:
                rows.append(_pair("vᵀJ", text(f"→ {where}", k.none, size=SIZE - 1), k))
                continue
            rows.append(_pair(f"vᵀJ → {where}", self.value(g, k), k))
        if not n.edges:
            rows.append(_wide(text("sends nothing on (no next edges)", k.muted, size=SIZE - 1)))
        return rows

    def _vjp_grid(self, n: Step, k: Ink) -> str | None:
        """v as a column, J beside it, vᵀJ under J: each result is its column of J weighted by v and summed."""
        j = n.jacobian
        o = self.opts
        if not o.jacobian or j is None:
            return None
        nrows, ncols = j.size
        if nrows == 0 or ncols == 0 or nrows > o.max_elements or ncols > o.max_elements:
            return None
        v_values = _flat(n.v, j.rows)
        groups = [(e, math.prod(shape)) for e, shape in enumerate(j.cols) if shape is not None]
        out_values = _flat(n.vjp, j.cols)
        if v_values is None or out_values is None or len(v_values) != nrows or len(out_values) != ncols:
            return None
        if sum(w for _, w in groups) != ncols:
            return None
        labels = _row_labels(j)
        precision = o.precision

        def fmt(x: float) -> str:
            return number(x, precision)

        columns = _column_labels(j) if labels or len(groups) > 1 or _has_matrix_side(j) else None
        if _grid_width(j, out_values, columns, fmt) > GRID_PX:
            return None  # v and vᵀJ are listed instead: a node stays narrow enough to read beside its neighbours

        lead = [cell("")] if labels else []
        many = len(groups) > 1
        rows = []
        if many:
            rows.append(
                row(*lead, cell(""), cell(text("J", k.muted, size=SIZE - 1, bold=True), colspan=ncols, align="CENTER"))
            )
        heads = []
        for e, width in groups:
            target = self.scene.target_text(n, e)
            title = f"→ {target}" if many else f"J  → {target}"
            heads.append(
                cell(
                    text(title, k.muted, size=SIZE - 1),
                    colspan=width,
                    align="CENTER",
                    sides="B",
                    colour=k.faint,
                )
            )
        rows.append(
            row(
                *lead,
                cell(text("v", k.muted, size=SIZE - 1, bold=True), align="RIGHT", sides="BR", colour=k.faint),
                *heads,
            )
        )
        if columns is not None and ncols > 1 and any(columns):
            rows.append(
                row(
                    *lead,
                    cell("", sides="R", colour=k.faint),
                    *[cell(text(c, k.muted, size=SMALL), align="RIGHT") for c in columns],
                )
            )
        for i in range(nrows):
            cells = [cell(text(labels[i], k.muted, size=SMALL), align="RIGHT")] if labels else []
            cells.append(cell(text(fmt(v_values[i]), k.text, size=SIZE), align="RIGHT", sides="R", colour=k.faint))
            for x in j.matrix[i]:
                cells.append(cell(text(fmt(x), k.faint if x == 0 else k.muted, size=SIZE), align="RIGHT"))
            rows.append(row(*cells))
        bottom = [cell(text("vᵀJ", k.muted, size=SIZE - 1, bold=True), align="RIGHT", sides="TR", colour=k.faint)]
        bottom += [
            cell(text(fmt(x), k.text, size=SIZE, bold=True), align="RIGHT", sides="T", colour=k.faint)
            for x in out_values
        ]
        rows.append(row(*lead, *bottom))
        return table(rows, padding=2)

    def _axes(self, n: Step, j: Jacobian, k: Ink) -> str:
        """Which axis of J is which, for a J whose sides are matrices (an mm's [2, 1] x drawn as a row of J)."""
        outs = [shape_text(s) for s in j.rows if s is not None]
        ins = []
        for e, shape in enumerate(j.cols):
            if shape is not None:
                goes_to = n.edges[e].target
                target = self.scene.trace.node(goes_to) if goes_to is not None else None
                name = target.leaf if target is not None and target.leaf else self.scene.target_text(n, e)
                ins.append(f"{name} {shape_text(shape)}")
        lines = [
            f"J: a row per element of v {' + '.join(outs)},",
            f"a column per element of {' + '.join(ins)},",
            "in row-major order: the [i,j] labels",
        ]
        return '<BR ALIGN="LEFT"/>'.join(text(line, k.muted, size=SMALL) for line in lines) + '<BR ALIGN="LEFT"/>'

    # -- leaves

    def _leaf_head(self, leaf: Leaf, k: Ink) -> list[str]:
        """The leaf's name and shape, and its values when small: x = [1, 2] beside J = 2x explains J."""
        rows = [_wide(self._leaf_title(leaf, k))]
        if leaf.value is not None:
            rows.append(_pair("value", self.value(leaf.value, k), k))
        return rows

    def _leaf_title(self, leaf: Leaf, k: Ink) -> str:
        what = {"leaf": "leaf", "retained": "retain_grad", "input": "input"}[leaf.kind]
        return (
            text(f"{what} ", k.muted, size=SIZE)
            + text(leaf.name, k.text, size=SIZE + 1, bold=True)
            + text(f"  {shape_text(leaf.shape)} {leaf.dtype}", k.muted, size=SIZE - 1)
        )

    def _leaf_rows(self, leaf: Leaf, k: Ink) -> list[str]:
        if leaf.grad is None:
            return [_wide(wrap(f"no gradient: {leaf.reason or 'none arrived'}", k.none, size=SIZE - 1))]
        node = self.scene.trace.node(leaf.node) if leaf.node is not None else None
        rows = []
        # An AccumulateGrad fed by several edges already shows the parts and their sum.
        if not (leaf.kind == "leaf" and node is not None and self._fan_in(node, 0)):
            rows.append(_pair("gradient", self.value(leaf.grad, k), k))
        if leaf.kind == "input" and self.scene.trace.kind == "grad":
            rows.append(_wide(text("returned by grad(); .grad is not changed", k.muted, size=SIZE - 1)))
            return rows
        rows.append(_pair(".grad before", self.value(leaf.grad_before, k), k))
        rows.append(_pair(".grad after", self.value(leaf.grad_total, k), k))
        return rows

    def unreached(self, leaf: Leaf) -> str:
        k = ink(self.theme, "unrun", self.theme.none)
        rows = [
            _header("leaf", leaf.name, k),
            _wide(text(f"{shape_text(leaf.shape)} {leaf.dtype}", k.muted, size=SIZE - 1)),
            _wide(wrap(f"no gradient: {leaf.reason or 'not reached'}", k.none, size=SIZE - 1)),
        ]
        return "<" + _frame(rows, k, state="unrun", dashed=True, ring=self.ring) + ">"

    # -- legend and title

    def legend(self, first_keys: list[tuple[str, str]] | None = None) -> str:
        """The colour scale and what colours and line styles mean; `first_keys` replace the node-reading hints."""
        t = self.theme
        scale = self.scene.scale
        rows = [row(cell(text("gradient size ‖g‖, log scale", t.text, size=SIZE - 1, bold=True), colspan=5))]
        ticks = scale.ticks()
        if ticks:
            # The bar in a table of its own, so that its five swatches are equally wide whatever the text below.
            swatches = "".join(
                f'<TD WIDTH="{LEGEND_SWATCH}" HEIGHT="10" FIXEDSIZE="TRUE" BGCOLOR="{scale.colour(x)}"></TD>'
                for x in ticks
            )
            names = "".join(
                f'<TD ALIGN="CENTER">{text(label, t.muted, size=SMALL)}</TD>' for label in tick_labels(ticks)
            )
            bar = (
                '<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="1" CELLPADDING="1">'
                f"<TR>{swatches}</TR><TR>{names}</TR></TABLE>"
            )
            rows.append(row(cell(bar, colspan=5, align="LEFT")))
        if first_keys is not None:
            keys = list(first_keys)
        elif self.scene.compact:
            keys = [(t.text, "a node: ‖v‖ it received → ‖vᵀJ‖ it sent along each next edge, left to right")]
        else:
            keys = [
                (t.text, "in a node: v (left column) times J gives vᵀJ (bottom row)"),
                (t.text, "in a leaf: .grad after = .grad before + gradient"),
            ]
        keys += [
            (t.zero, "dashed grey: exactly zero"),
            (t.none, "dashed light grey: None, an input needing no grad, or not run"),
            (t.warning, "red: NaN/Inf, or vᵀJ ≠ v·J"),
        ]
        if self.opts.step is not None:
            keys += [(t.active, "purple: the step shown"), (t.faint, "pale: not computed yet")]
        for colour, words in keys:
            rows.append(row(cell(text(words, colour, size=SMALL), colspan=5)))
        return (
            f'<<TABLE BORDER="1" CELLBORDER="0" CELLSPACING="1" CELLPADDING="2" COLOR="{t.faint}" '
            f'BGCOLOR="{t.panel}">' + "".join(rows) + "</TABLE>>"
        )

    def title(self) -> str:
        tr = self.scene.trace
        t = self.theme
        seeds = ", ".join(output_title(s) for s in tr.seeds) or "no outputs"
        call = "torch.autograd.grad" if tr.kind == "grad" else "backward"
        steps = len(tr.steps)
        leaves = len(tr.leaves)
        words = (
            f"{call} of {seeds} · {steps} step{'s' if steps != 1 else ''} · {leaves} lea{'ves' if leaves != 1 else 'f'}"
        )
        # Every picture says its pass, the first too: a later pass of the same block reads the same way.
        words = f"pass {tr.index} · {words}"
        if tr.label:
            words = f"{basename_source(tr.label)} · {words}"
        source = basename_source(tr.source)
        if source:
            words += f" · {source}"
        lines = [text(words, t.text, size=SIZE + 1, bold=True)]
        if self.scene.headline:
            lines.append(text(self.scene.headline, t.muted, size=SIZE))
        if self.opts.step is not None:
            lines.append(text(f"frame: step {self.opts.step} of {len(tr.steps)}", t.active, size=SIZE))
        if not tr.complete:
            lines.append(wrap(f"⚠ incomplete: {tr.error or 'the pass stopped early'}", t.warning, size=SIZE))
        rows = [row(cell(line, align="CENTER")) for line in lines]
        return "<" + table(rows, padding=2, extra=f' BGCOLOR="{t.panel}"') + ">"

    def cluster(self, module: str) -> str:
        t = self.theme
        return "<" + table([row(cell(text(module, t.muted, size=SIZE - 1)))], extra=f' BGCOLOR="{t.panel}"') + ">"

    def constant(self, stub: StubCause | None = None) -> str:
        """The dashed "no grad" stub; recorded with forward=True it names the cut and its line."""
        t = self.theme
        if stub is None:
            return "<" + table([row(cell(font(label_text("no grad: constant or detached"), t.none, size=SMALL)))]) + ">"
        lines = [f"no grad: {stub.cut}"] + ([] if stub.where is None else [stub.where])
        return "<" + table([row(cell(font(label_text(line), t.none, size=SMALL))) for line in lines]) + ">"

    def edge(self, info: TensorInfo | None, colour: str) -> str:
        o = self.opts
        shown = _edge_text(info, o.precision, o.max_elements)
        return (
            "<" + table([row(cell(text(shown, colour, size=SIZE - 1)))], extra=f' BGCOLOR="{self.theme.panel}"') + ">"
        )


EDGE_VALUES = 6  # an edge label prints the values of gradients up to this many elements
LEGEND_SWATCH = 44  # points: the width of each of the legend's five colours (all equal, whatever their labels)
GRID_PX = 900  # a J grid wider than about this (in pixels at 100%) is listed as v and vᵀJ instead
MAX_NORMS = 4  # a compact node lists the norms of up to this many outputs or edges


def _edge_text(info: TensorInfo | None, precision: int, max_elements: int) -> str:
    """Values when they fit on a short line, else shape and norm."""
    if info is not None and has_values(info, min(max_elements, EDGE_VALUES)):
        return inline(info, precision, max_elements)
    return inline(info, precision, 0)


def _norm(value: float | None, precision: int) -> str:
    return "None" if value is None else number(value, precision)


def _norms(infos: tuple[TensorInfo | None, ...], precision: int) -> str:
    """One norm per output or edge, never their combination: an add's two 11.34 are '11.34, 11.34', not 16.03."""
    shown = [_norm(i.norm if i is not None else None, precision) for i in infos[:MAX_NORMS]]
    more = f" +{len(infos) - MAX_NORMS} more" if len(infos) > MAX_NORMS else ""
    return (", ".join(shown) or "–") + more


def _flat(infos: tuple[TensorInfo | None, ...], shapes: tuple[tuple[int, ...] | None, ...]) -> list[float] | None:
    """The values of the entries that have a Jacobian side, concatenated; None when one was not kept."""
    out: list[float] = []
    for k, shape in enumerate(shapes):
        if shape is None:
            continue
        info = infos[k] if k < len(infos) else None
        if info is None or info.values is None:
            return None
        out.extend(float(x) for x in info.values)
    return out


def _grid_width(j: Jacobian, out_values: list[float], columns: list[str] | None, fmt: Callable[[float], str]) -> float:
    """About how many pixels wide J's columns are drawn: each as wide as its widest number (10-point digits, about
    8.7 px each) or index label (9-point, about 6.5 px a character), plus the gap between columns."""
    total = 0.0
    for c in range(len(out_values)):
        widest = 8.7 * max(len(fmt(out_values[c])), *(len(fmt(line[c])) for line in j.matrix))
        if columns is not None:
            widest = max(widest, 6.5 * len(columns[c]))
        total += widest + 6
    return total


def _has_matrix_side(j: Jacobian) -> bool:
    """Whether a side of J flattens a tensor of two or more dimensions (its reading order needs saying)."""
    return any(s is not None and len(s) >= 2 for s in (*j.rows, *j.cols))


def _index(shape: tuple[int, ...]) -> list[str]:
    """'[i,j]' for every element of a tensor of this shape, row-major; '[]' for a 0-d one."""
    index: list[tuple[int, ...]] = [()]
    for d in shape:
        index = [(*p, i) for p in index for i in range(d)]
    return ["[" + ",".join(str(i) for i in ix) + "]" for ix in index]


def _column_labels(j: Jacobian) -> list[str]:
    """The element of each column of J: '[1,0]', the index within the input its edge leads to."""
    return [label if shape else "" for shape in j.cols if shape is not None for label in _index(shape)]


def _row_labels(j: Jacobian) -> list[str] | None:
    """Index labels for the rows of J when v is not a single vector: '[1,0]', or 'out 1 [2]' for several outputs."""
    present = [(r, s) for r, s in enumerate(j.rows) if s is not None]
    if len(present) == 1 and len(present[0][1]) <= 1:
        return None
    labels = []
    for r, shape in present:
        prefix = f"out {r} " if len(present) > 1 else ""
        if not shape:
            labels.append(prefix.strip() or "[]")
            continue
        labels += [prefix + label for label in _index(shape)]
    return labels
