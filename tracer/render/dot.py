"""A trace as DOT text: pure string work in one linear pass over the trace (no Graphviz, no subprocess).

Node ids follow graph.py: `seed<k>`, `n<id>`, `const<id>_<k>`, and `leaf<k>` for leaves the pass never reached.
Nodes that carry `Step.module` are grouped into nested clusters named after the module path.
"""

from __future__ import annotations

from ..analyse.graph import constant_key, node_key, seed_key
from ..model.records import Leaf, Seed, Step, Trace
from . import tooltips
from .escape import dot_multiline, dot_string
from .labels import Labels
from .options import RenderOptions
from .scene import Scene, State


def build(
    trace: Trace, opts: RenderOptions, *, shown: frozenset[int] | None = None, headline: str | None = None
) -> str:
    """The DOT text of the whole picture (or of one step's frame when `opts.step` is set); with `shown`, only
    those nodes and the edges between them (focus=)."""
    scene = Scene(trace, opts, shown=shown, headline=headline)
    return Builder(scene).build()


# Drawn nodes above which dot's placement of nodes across each rank is cut short (Graphviz's nslimit): that
# network-simplex phase is superlinear and took 17 of dot's 24 s on a 4,103-node graph; cut short at 0.05 x
# nodes iterations it took 2 s. Nodes stay on their ranks, only edges are a little less straight.
BIG_PICTURE = 1_000


def attrs(pairs: list[tuple[str, str]]) -> str:
    return "[" + ", ".join(f"{k}={v}" for k, v in pairs) + "]"


class Builder:
    """The full picture's DOT; its pieces (header, seeds, nodes, legend) also serve the module view."""

    def __init__(self, scene: Scene) -> None:
        self.scene = scene
        self.opts = scene.opts
        self.theme = scene.theme
        self.labels = Labels(scene)

    def build(self) -> str:
        out = self.header()
        for s in self.scene.seeds:
            out.append(self.seed_line(s))
        self._nodes(out)
        for key, leaf in self.scene.unreached:
            out.append(self.unreached_line(key, leaf))
        self._edges(out)
        out += self.legend_lines()
        out.append("}")
        return "\n".join(out) + "\n"

    def header(self) -> list[str]:
        """The opening lines: graph attributes (title, tooltip, layout) and node and edge defaults."""
        t = self.theme
        out = ["digraph gradtrace {"]
        out.append(
            "  graph "
            + attrs(
                [
                    ("rankdir", self.opts.direction),
                    ("bgcolor", dot_string(t.background)),
                    ("fontname", dot_string(t.font)),
                    ("label", self.labels.title()),
                    ("tooltip", dot_multiline(tooltips.trace(self.scene))),
                    ("labelloc", "t"),
                    ("nodesep", "0.3"),
                    ("ranksep", "0.35"),
                    ("outputorder", "edgesfirst"),
                    # children in next-edge order: left to right like the columns of J
                    ("ordering", "out"),
                    *([("nslimit", "0.05")] if len(self.scene.nodes) > BIG_PICTURE else []),
                ]
            )
            + ";"
        )
        out.append(f'  node [shape=plain, fontname={dot_string(t.font)}, fontsize=10, fontcolor="{t.text}"];')
        out.append(f'  edge [fontname={dot_string(t.font)}, fontsize=9, arrowsize=0.7, color="{t.none}"];')
        return out

    def seed_line(self, s: Seed) -> str:
        return (
            f"  {seed_key(s.index)} "
            + attrs(
                [
                    ("id", f'"{seed_key(s.index)}"'),
                    ("class", '"gt-seed"'),
                    ("label", self.labels.seed(s)),
                    ("tooltip", dot_multiline(tooltips.seed(self.scene, s))),
                ]
            )
            + ";"
        )

    def unreached_line(self, key: str, leaf: Leaf) -> str:
        return (
            f"  {key} "
            + attrs(
                [
                    ("id", f'"{key}"'),
                    ("class", '"gt-leaf gt-unrun"'),
                    ("label", self.labels.unreached(leaf)),
                    ("tooltip", dot_multiline(tooltips.unreached(self.scene, leaf))),
                ]
            )
            + ";"
        )

    def legend_lines(self, label: str | None = None) -> list[str]:
        if not self.opts.legend:
            return []
        pairs = [
            ("id", '"legend"'),
            ("class", '"gt-legend"'),
            ("label", label or self.labels.legend()),
            ("tooltip", '"colour: gradient norm on a log10 scale"'),
        ]
        return ["  legend " + attrs(pairs) + ";", "  { rank=sink; legend; }"]

    # -- nodes

    def node_line(self, n: Step, indent: str = "  ") -> str:
        state = self.scene.state(n)
        kind = "gt-leaf" if n.leaf is not None else "gt-op"
        return (
            f"{indent}{node_key(n.id)} "
            + attrs(
                [
                    ("id", f'"{node_key(n.id)}"'),
                    ("class", f'"gt-node {kind} gt-{state}"'),
                    *self.labels.node_attrs(n),
                    ("tooltip", dot_multiline(tooltips.step(self.scene, n))),
                ]
            )
            + ";"
        )

    def _nodes(self, out: list[str]) -> None:
        nodes = self.scene.nodes
        if not self.opts.clusters or not any(n.module for n in nodes):
            out.extend(self.node_line(n, "  ") for n in nodes)
            return
        members: dict[str, list[Step]] = {}
        top: list[Step] = []
        for n in nodes:
            if n.module:
                members.setdefault(n.module, []).append(n)
            else:
                top.append(n)
        prefixes: set[str] = set()
        for module in members:
            parts = module.split(".")
            prefixes.update(".".join(parts[: i + 1]) for i in range(len(parts)))
        ordered = sorted(prefixes)
        number = {p: i for i, p in enumerate(ordered)}
        children: dict[str | None, list[str]] = {}
        for p in ordered:
            parent = p.rpartition(".")[0] or None
            children.setdefault(parent if parent in prefixes else None, []).append(p)

        def emit(prefix: str, depth: int) -> None:
            pad = "  " * (depth + 1)
            out.append(f"{pad}subgraph cluster_{number[prefix]} {{")
            out.append(
                f"{pad}  graph "
                + attrs(
                    [
                        ("label", self.labels.cluster(prefix)),
                        ("style", '"rounded,dashed"'),
                        ("color", f'"{self.theme.none}"'),
                        ("tooltip", dot_string(f"module {prefix}")),
                    ]
                )
                + ";"
            )
            for n in members.get(prefix, ()):
                out.append(self.node_line(n, pad + "  "))
            for child in children.get(prefix, ()):
                emit(child, depth + 1)
            out.append(f"{pad}}}")

        out.extend(self.node_line(n, "  ") for n in top)
        for p in children.get(None, ()):
            emit(p, 0)

    # -- edges

    def edge_style(
        self, kind: str, norm: float | None, finite: bool, time: int, target: int | None
    ) -> tuple[list[tuple[str, str]], str, State]:
        """DOT attributes, the label colour and the frame state of an edge computed at step `time`."""
        t = self.theme
        scale = self.scene.scale
        state = self.scene.time_state(time) if kind != "pending" else "unrun"
        style: list[tuple[str, str]] = []
        colour = t.none
        width = 1.0
        if kind == "grad":
            colour = scale.colour(norm, finite)
            if norm and finite and not scale.empty:
                width = 1.2 + 1.8 * scale.position(norm)
            elif norm == 0 and finite:
                style.append(("style", "dashed"))  # a gradient of exact zeros carries nothing, like None
        else:
            style.append(("style", "dashed"))
        if kind == "cut":
            style.append(("arrowhead", "odot"))
        frame = self.opts.step
        into_active = frame is not None and target == frame and state == "done"
        if state == "pending":
            colour = t.faint
        elif (state == "active" or into_active) and kind != "cut":
            colour, width = t.active, 3.0
            state = "active"
        style += [("color", f'"{colour}"'), ("penwidth", f"{width:.2f}")]
        return style, colour, state

    def _edges(self, out: list[str]) -> None:
        scene = self.scene
        show = self.opts.edge_labels and not scene.compact  # edge labels double Graphviz's layout work
        for s in scene.seeds:
            if s.target is None:
                continue
            norm = s.v.norm if s.v is not None else None
            finite = s.v is None or s.v.stats is None or s.v.stats.finite
            style, colour, state = self.edge_style("grad" if s.v is not None else "none", norm, finite, 0, s.target)
            key = f"e{seed_key(s.index)}"
            pairs = [("id", f'"{key}"'), ("class", f'"gt-edge gt-{state}"'), *style]
            if show:
                pairs.append(("label", self.labels.edge(s.v, colour)))
            pairs.append(("tooltip", dot_multiline(tooltips.seed_edge(scene, s))))
            out.append(f"  {seed_key(s.index)} -> {node_key(s.target)} " + attrs(pairs) + ";")
        for n in scene.nodes:
            for k, e in enumerate(n.edges):
                if not scene.draws_edge(n, k):
                    continue
                g = n.vjp[k] if k < len(n.vjp) else None
                if e.target is None:
                    kind = "cut"
                    const = constant_key(n.id, k)
                    out.append(
                        f"  {const} "
                        + attrs(
                            [
                                ("id", f'"{const}"'),
                                ("class", '"gt-const"'),
                                ("label", self.labels.constant(scene.trace.stub(n.id, k))),
                                ("tooltip", dot_multiline(tooltips.constant(n, k, scene.trace.stub(n.id, k)))),
                            ]
                        )
                        + ";"
                    )
                elif not n.executed:
                    kind = "pending"
                else:
                    kind = "grad" if g is not None else "none"
                norm = g.norm if g is not None else None
                finite = g is None or g.stats is None or g.stats.finite
                style, colour, state = self.edge_style(kind, norm, finite, n.id, e.target)
                key = f"e{n.id}_{k}"
                pairs = [("id", f'"{key}"'), ("class", f'"gt-edge gt-{kind} gt-{state}"'), *style]
                if show and kind in ("grad", "none"):
                    pairs.append(("label", self.labels.edge(g, colour)))
                pairs.append(("tooltip", dot_multiline(tooltips.edge(scene, n, k))))
                out.append(f"  {node_key(n.id)} -> {scene.edge_target_key(n, k)} " + attrs(pairs) + ";")
