"""The module view as DOT text: boxes, runs and ordinary nodes in module clusters, edges carrying combined norms.

Ids: `m<k>` boxes, `r<k>` runs, `f<k>` edges between drawn things, and the full picture's `seed<k>`, `n<id>`,
`const<id>_<k>` and `leaf<k>` for the nodes it keeps. One linear pass over the ModuleView.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..analyse.graph import constant_key, node_key, seed_key
from ..analyse.module_view import ModuleView
from ..analyse.naming import output_title, step_label
from ..model.records import Trace
from . import module_tooltips, tooltips
from .dot import Builder, attrs
from .escape import dot_multiline, dot_string
from .module_labels import ModuleLabels
from .options import RenderOptions
from .scene import Scene

MODULE_KEYS = [
    ("box", "a box is one module: grad in = what its outputs received, grad out = what it sent to its inputs"),
    ("box", "params = ‖grad‖ of its parameters; an edge = the gradient between two boxes"),
    ("box", "≈ estimated from a sample · ≤ upper bound (hover a box for every detail)"),
]


def headline(view: ModuleView) -> str:
    boxes = len(view.boxes) + sum(len(r.blocks) for r in view.runs)
    words = f"module view · depth {view.depth} of {view.deepest} · {boxes} module{'s' if boxes != 1 else ''}"
    if view.runs:
        words += f" ({', '.join(f'{len(r.blocks)} × {r.run.cls}' for r in view.runs)} as one box)"
    if view.focus is not None:
        words += f" · focus: {view.focus.kind} {view.focus.name}"
    return words


def build(trace_scene: Scene, view: ModuleView, *, links: Mapping[str, str] | None = None) -> str:
    """DOT text of the module view; `links` maps a box or run id to a URL (the HTML page's inside views)."""
    return _ModuleBuilder(trace_scene, view, links or {}).build()


def scene_for(trace: Trace, opts: RenderOptions, view: ModuleView, *, note: str | None = None) -> Scene:
    """The Scene that draws the view's ordinary nodes, with a colour scale spanning every norm the view shows;
    `note` is a line added under the headline (partial module tags)."""
    words = headline(view) + (f" · {note}" if note else "")
    return Scene(trace, opts, shown=frozenset(view.nodes), headline=words, extra_norms=view.norms())


class _ModuleBuilder:
    def __init__(self, scene: Scene, view: ModuleView, links: Mapping[str, str]) -> None:
        self.scene = scene
        self.view = view
        self.links = links
        self.base = Builder(scene)
        self.labels = ModuleLabels(scene)
        self.names: dict[str, str] = {}  # DOT id -> how tooltips name it
        for b in view.boxes:
            self.names[b.key] = b.path or "(model)"
        for r in view.runs:
            self.names[r.key] = r.run.name
        for i in view.nodes:
            self.names[node_key(i)] = step_label(scene.trace.node(i))
        for s in scene.trace.seeds:
            self.names[seed_key(s.index)] = f"seed of {output_title(s)}"

    def build(self) -> str:
        out = self.base.header()
        trace = self.scene.trace
        for index in self.view.seeds:
            out.append(self.base.seed_line(trace.seeds[index]))
        placed: dict[str | None, list[str]] = {}
        for key, cluster in self.view.home.items():
            placed.setdefault(cluster, []).append(key)
        lines = {**self._box_lines(), **self._node_lines()}
        out += [lines[k] for k in placed.get(None, [])]
        children: dict[str | None, list[str]] = {}
        for module, parent in self.view.clusters:
            children.setdefault(parent, []).append(module)
        number = {module: i for i, (module, _) in enumerate(self.view.clusters, start=1)}

        def emit(module: str, depth: int) -> None:
            pad = "  " * (depth + 1)
            focus = self.view.focus
            opened = focus is not None and focus.module == module
            out.append(f"{pad}subgraph cluster_{number[module]} {{")
            label = self.labels.cluster(module, self.view.classes.get(module, "?"), opened)
            colour = self.scene.theme.text if opened else self.scene.theme.none
            style = '"rounded"' if opened else '"rounded,dashed"'
            tip = dot_string(f"module {module or '(model)'} ({self.view.classes.get(module, '?')})")
            graph = attrs([("label", label), ("style", style), ("color", f'"{colour}"'), ("tooltip", tip)])
            out.append(f"{pad}  graph {graph};")
            out.extend(pad + lines[k].lstrip() for k in placed.get(module, []))
            for child in children.get(module, []):
                emit(child, depth + 1)
            out.append(f"{pad}}}")

        for module in children.get(None, []):
            emit(module, 0)
        for k, leaf in enumerate(trace.leaves.values()):
            if leaf in self.view.unreached:
                out.append(self.base.unreached_line(f"leaf{k}", leaf))
        out += self._constants()
        out += self._flows()
        t = self.scene.theme
        out += self.base.legend_lines(self.base.labels.legend([(t.text, words) for _, words in MODULE_KEYS]))
        out.append("}")
        return "\n".join(out) + "\n"

    def _box_lines(self) -> dict[str, str]:
        out = {}
        for b in self.view.boxes:
            link = self.links.get(b.key)
            pairs = [
                ("id", f'"{b.key}"'),
                ("class", '"gt-module gt-own"' if b.own else '"gt-module"'),
                ("shape", "plain"),
                ("label", self.labels.box(b, linked=link is not None)),
                ("tooltip", dot_multiline(module_tooltips.box(b))),
            ]
            if link is not None:
                pairs.append(("URL", dot_string(link)))
            out[b.key] = f"  {b.key} " + attrs(pairs) + ";"
        for r in self.view.runs:
            link = self.links.get(r.key)
            pairs = [
                ("id", f'"{r.key}"'),
                ("class", '"gt-module gt-run"'),
                ("shape", "plain"),
                ("label", self.labels.run(r, linked=link is not None)),
                ("tooltip", dot_multiline(module_tooltips.run(r))),
            ]
            if link is not None:
                pairs.append(("URL", dot_string(link)))
            out[r.key] = f"  {r.key} " + attrs(pairs) + ";"
        return out

    def _node_lines(self) -> dict[str, str]:
        return {node_key(i): self.base.node_line(self.scene.trace.node(i)) for i in self.view.nodes}

    def _constants(self) -> list[str]:
        """Inputs of the drawn nodes that need no gradient, as in the full picture (boxes only count theirs)."""
        out = []
        for i in self.view.nodes:
            n = self.scene.trace.node(i)
            for k, e in enumerate(n.edges):
                if e.target is not None:
                    continue
                const = constant_key(n.id, k)
                pairs = [
                    ("id", f'"{const}"'),
                    ("class", '"gt-const"'),
                    ("label", self.base.labels.constant(self.scene.trace.stub(n.id, k))),
                    ("tooltip", dot_multiline(tooltips.constant(n, k, self.scene.trace.stub(n.id, k)))),
                ]
                out.append(f"  {const} " + attrs(pairs) + ";")
                style, _, _ = self.base.edge_style("cut", None, True, n.id, None)
                edge = [("id", f'"e{n.id}_{k}"'), ("class", '"gt-edge gt-cut"'), *style]
                edge.append(("tooltip", dot_multiline(tooltips.edge(self.scene, n, k))))
                out.append(f"  {node_key(n.id)} -> {const} " + attrs(edge) + ";")
        return out

    def _flows(self) -> list[str]:
        out = []
        show = self.scene.opts.edge_labels
        modules = {b.key for b in self.view.boxes} | {r.key for r in self.view.runs}
        for f in self.view.flows:
            finite = f.norm.finite
            style, colour, _ = self.base.edge_style(f.kind, f.norm.norm, finite, 0, None)
            pairs = [("id", f'"{f.key}"'), ("class", f'"gt-edge gt-flow gt-{f.kind}"'), *style]
            if show and f.kind != "pending":
                if f.single is not None and f.source not in modules and f.target not in modules:
                    pairs.append(("label", self.base.labels.edge(f.single, colour)))
                else:
                    pairs.append(("label", self.labels.flow(f, colour)))
            tip = module_tooltips.flow(f, self.names.get(f.source, f.source), self.names.get(f.target, f.target))
            pairs.append(("tooltip", dot_multiline(tip)))
            out.append(f"  {f.source} -> {f.target} " + attrs(pairs) + ";")
        return out
