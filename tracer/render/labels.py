"""The HTML-like label of each kind of node: seed, backward step (v, J, vᵀJ), leaf, cut input, and the legend."""

from __future__ import annotations

import math

from ..analyse.naming import output_title
from ..model.format import has_values, inline, number, shape_text
from ..model.records import Jacobian, Leaf, NoteKind, Seed, Step, TensorInfo
from .escape import basename_source, label_text, plain_label
from .html_label import Ink, cell, font, row, table, tensor, text
from .scene import Scene, State, total_norm
from .style import Theme

SIZE = 10.0  # point size of values
NOTE_CHARS = 72  # longer notes are cut in the label (the tooltip has them in full)
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
        rows += [_wide(text(p, k.warning if state != "pending" else k.faint, size=SIZE - 1)) for p in problems]
        if n.note is not None and n.note_kind is not NoteKind.RAISED:
            rows.append(_wide(text(_cut(n.note), k.muted, size=SIZE - 1)))
        return "<" + _frame(rows, k, state=state, dashed=not n.executed, ring=self.ring) + ">"

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
            line = f"‖v‖ {_norm(total_norm(n.v), p)} → ‖vᵀJ‖ {_norm(total_norm(n.vjp), p)}"
        else:
            line = n.op
        lines = [f"{badge} · {n.name}", line, *problems[:1]]
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
            return [_wide(grid)]
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
            rows.append(
                _pair(
                    "J",
                    text(
                        f"{r}×{c} (not drawn: more than max_elements={self.opts.max_elements})", k.muted, size=SIZE - 1
                    ),
                    k,
                )
            )
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
                    text(title, k.muted, size=SIZE - 2 if many else SIZE - 1),
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
        for i in range(nrows):
            cells = [cell(text(labels[i], k.faint, size=SIZE - 2), align="RIGHT")] if labels else []
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
            return [_wide(text(_cut(f"no gradient: {leaf.reason or 'none arrived'}"), k.none, size=SIZE - 1))]
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
            _wide(text(_cut(f"no gradient: {leaf.reason or 'not reached'}"), k.none, size=SIZE - 1)),
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
            rows.append(row(*[cell(" ", bgcolor=scale.colour(x)) for x in ticks]))
            rows.append(row(*[cell(text(number(x, 2), t.muted, size=SIZE - 2), align="CENTER") for x in ticks]))
        if first_keys is not None:
            keys = list(first_keys)
        elif self.scene.compact:
            keys = []
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
            rows.append(row(cell(text(words, colour, size=SIZE - 2), colspan=5)))
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
        if tr.index != 1:
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
            lines.append(text(_cut(f"⚠ incomplete: {tr.error or 'the pass stopped early'}"), t.warning, size=SIZE))
        rows = [row(cell(line, align="CENTER")) for line in lines]
        return "<" + table(rows, padding=2, extra=f' BGCOLOR="{t.panel}"') + ">"

    def cluster(self, module: str) -> str:
        t = self.theme
        return "<" + table([row(cell(text(module, t.muted, size=SIZE - 1)))], extra=f' BGCOLOR="{t.panel}"') + ">"

    def constant(self) -> str:
        t = self.theme
        return "<" + table([row(cell(font(label_text("no grad: constant or detached"), t.none, size=SIZE - 2)))]) + ">"

    def edge(self, info: TensorInfo | None, colour: str) -> str:
        o = self.opts
        shown = _edge_text(info, o.precision, o.max_elements)
        return (
            "<" + table([row(cell(text(shown, colour, size=SIZE - 1)))], extra=f' BGCOLOR="{self.theme.panel}"') + ">"
        )


EDGE_VALUES = 6  # an edge label prints the values of gradients up to this many elements


def _edge_text(info: TensorInfo | None, precision: int, max_elements: int) -> str:
    """Values when they fit on a short line, else shape and norm."""
    if info is not None and has_values(info, min(max_elements, EDGE_VALUES)):
        return inline(info, precision, max_elements)
    return inline(info, precision, 0)


def _norm(value: float | None, precision: int) -> str:
    return "None" if value is None else number(value, precision)


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
        index: list[tuple[int, ...]] = [()]
        for d in shape:
            index = [(*p, i) for p in index for i in range(d)]
        labels += [prefix + "[" + ",".join(str(i) for i in ix) + "]" for ix in index]
    return labels
