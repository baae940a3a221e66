"""The HTML-like labels of the module view: a module's box, a run of repeated blocks, a module cluster, an edge."""

from __future__ import annotations

import math

from ..analyse.flow_norm import FlowNorm
from ..analyse.module_view import Box, Flow, ParamGrad, RunBox
from .html_label import cell, row, table, text
from .scene import Scene
from .style import ColourScale

SIZE = 10.0
SMALL = 9.0  # the smallest text (labels.SMALL)
PARAMS_LISTED = 4  # a box lists its parameters' gradient norms up to this many; above, the largest and smallest


def _relative(path: str, name: str) -> str:
    """'self_attn.in_proj_weight' for a parameter of 'model.layers.3' (names inside a box are read relative)."""
    return name[len(path) + 1 :] if path and name.startswith(path + ".") else name


class ModuleLabels:
    """Labels for one module view drawn in one Scene (its theme, colour scale and options)."""

    def __init__(self, scene: Scene) -> None:
        self.scene = scene
        self.theme = scene.theme
        self.precision = scene.opts.precision
        self.scale: ColourScale = scene.scale

    def colour(self, f: FlowNorm) -> str:
        return self.scale.colour(f.norm, f.finite)

    def value(self, f: FlowNorm, *, nothing: str = "—") -> str:
        """A norm coloured on the scale ('—' where nothing crosses, 'None' for a None gradient)."""
        t = self.theme
        if f.norm is None and f.edges == 0:
            return text(nothing, t.muted, size=SIZE)
        return text(f.text(self.precision), self.colour(f) if f.norm is not None else t.none, size=SIZE, bold=True)

    def _frame(self, rows: list[str], border: str) -> str:
        """The box: a table with a 2-point border in the colour of the gradient entering it."""
        return (
            f'<<TABLE BORDER="2" CELLBORDER="0" CELLSPACING="0" CELLPADDING="3" COLOR="{border}" '
            f'BGCOLOR="{self.theme.panel}">' + "".join(rows) + "</TABLE>>"
        )

    def _header(self, badge: str, title: str, columns: int) -> str:
        t = self.theme
        return row(
            cell(text(badge, t.badge_text, bold=True), align="CENTER", bgcolor=t.badge),
            cell(text(title, t.text, bold=True, size=11), bgcolor=t.header, colspan=max(1, columns - 1)),
        )

    def _pair(self, name: str, value_html: str, columns: int) -> str:
        t = self.theme
        head = cell(text(name, t.muted, size=SIZE - 1), align="RIGHT") if name else cell("")
        return row(head, cell(value_html, colspan=max(1, columns - 1)))

    def _wide(self, html: str, columns: int) -> str:
        return row(cell(html, colspan=columns))

    # -- one module

    def box(self, b: Box, *, linked: bool) -> str:
        t = self.theme
        title = f"{b.path or '(model)'} · own operations" if b.own else (b.path or "(model)")
        rows = [self._header("module", title, 2)]
        facts = f"{b.cls} · {b.node_count} node{'s' if b.node_count != 1 else ''}"
        if b.not_run:
            facts += f" ({b.not_run} not run)"
        rows.append(self._wide(text(facts, t.muted, size=SIZE - 1), 2))
        if b.shown != b.node_count:
            rows.append(self._wide(text(f"{b.shown} of them on the focused paths", t.muted, size=SIZE - 1), 2))
        rows.append(self._pair("grad in", self.value(b.entering), 2))
        rows.append(self._pair("grad out", self.value(b.leaving, nothing="— (sends nothing out)"), 2))
        rows += self._params(b.path, b.params, b.params_norm)
        if b.openable:
            hint = "click to open" if linked else f"open: focus='{b.path}'"
            rows.append(self._wide(text(f"⊕ {hint}", t.muted, size=SMALL), 2))
        border = self.colour(b.entering) if b.entering.norm is not None else t.none
        return self._frame(rows, border)

    def _params(self, path: str, params: tuple[ParamGrad, ...], total: FlowNorm) -> list[str]:
        t = self.theme
        own = [p for p in params if p.parameter]
        if not own:
            return []
        head = f"params ({len(own)})" if len(own) > 1 else "param"
        if len(own) == 1:
            p = own[0]
            return [
                self._pair(head, self.value(total) + text(f"  {_relative(path, p.name)}", t.muted, size=SIZE - 1), 2)
            ]
        rows = [self._pair(head, self.value(total) + text("  total ‖grad‖", t.muted, size=SIZE - 1), 2)]
        if len(own) <= PARAMS_LISTED:
            listed = [("", p) for p in own]
        else:
            present = sorted((p for p in own if p.norm is not None), key=lambda p: (-_sortable(p.norm), p.name))
            listed = [("largest ", present[0])] if present else []
            if len(present) > 1:
                listed.append(("smallest ", present[-1]))
            missing = [p for p in own if p.norm is None]
            if missing:
                listed.append(("no grad ", missing[0]))
        for prefix, p in listed:
            name = text(f"{prefix}{_relative(path, p.name)}", t.muted, size=SIZE - 1)
            rows.append(self._pair("", name + text("  ", t.muted) + self.value(FlowNorm(p.norm, 1)), 2))
        return rows

    # -- repeated blocks

    def run(self, r: RunBox, *, linked: bool) -> str:
        t = self.theme
        columns = 5
        rows = [self._header(f"{len(r.blocks)} ×", r.run.name, columns)]
        facts = f"{len(r.blocks)} × {r.run.cls} · {r.node_count} nodes · {r.param_count} parameters"
        rows.append(self._wide(text(facts, t.muted, size=SIZE - 1), columns))
        rows.append(self._pair("grad in", self.value(r.entering), columns))
        rows.append(self._pair("grad out", self.value(r.leaving, nothing="— (sends nothing out)"), columns))
        rows.append(
            self._pair("params", self.value(r.params_norm) + text("  total ‖grad‖", t.muted, size=SIZE - 1), columns)
        )
        heads = ["block", "grad in", "grad out", "params", "nodes"]
        rows.append(
            row(
                *[
                    cell(text(h, t.muted, size=SMALL, bold=True), align="RIGHT", sides="B", colour=t.faint)
                    for h in heads
                ]
            )
        )
        for b in r.blocks:  # backward order: the block the gradient reaches first on top
            index = b.path.rpartition(".")[2]
            rows.append(
                row(
                    cell(text(index, t.text, size=SIZE - 1), align="RIGHT"),
                    cell(self.value(b.entering), align="RIGHT"),
                    cell(self.value(b.leaving), align="RIGHT"),
                    cell(self.value(b.params_norm), align="RIGHT"),
                    cell(text(str(b.node_count), t.muted, size=SIZE - 1), align="RIGHT"),
                )
            )
        hint = "click to draw each block" if linked else "draw each block: repeats='expand'"
        rows.append(self._wide(text(f"⊕ {hint}", t.muted, size=SMALL), columns))
        border = self.colour(r.entering) if r.entering.norm is not None else t.none
        return self._frame(rows, border)

    # -- clusters and edges

    def cluster(self, path: str, cls: str, opened: bool) -> str:
        t = self.theme
        words = f"{path or '(model)'} · {cls}" + (" · opened" if opened else "")
        colour = t.text if opened else t.muted
        return (
            "<"
            + table([row(cell(text(words, colour, size=SIZE - 1, bold=opened)))], extra=f' BGCOLOR="{t.panel}"')
            + ">"
        )

    def flow(self, f: Flow, colour: str) -> str:
        words = f"‖·‖ {f.norm.text(self.precision)}"
        if f.norm.edges > 1:
            words += f" · {f.norm.edges} edges"
        return (
            "<" + table([row(cell(text(words, colour, size=SIZE - 1)))], extra=f' BGCOLOR="{self.theme.panel}"') + ">"
        )


def _sortable(norm: float | None) -> float:
    if norm is None or math.isnan(norm):
        return -math.inf
    return norm
