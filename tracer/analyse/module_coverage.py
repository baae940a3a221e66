"""How much of a pass carries module tags, and why the rest does not: what the module view says before it draws.

A node without a tag is one of three kinds, told apart by where it sits in the graph (one linear pass each way):
- *after the model's output*: no tagged node between it and the seed — the loss and what follows the model;
- *before the model's inputs*: no tagged node below it — inputs made outside the model, their leaves;
- *between tagged nodes*: tagged nodes both above and below it. Its forward ran while the model's was under way
  but no module's forward hook saw it: plain code between module calls, or — when there are many — a forward
  that ran before the record() block opened (only the part inside the block got tags).
The module view draws untagged nodes one by one, so many of the third kind turn its boxes into a sprawling graph:
`partial` says so, and `explain()` says it in words.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..model.records import Trace

PARTIAL_SHARE = 0.1  # untagged nodes between tagged ones above this share of the pass make the tagging partial
PARTIAL_LEAST = 10  # ... and at least this many of them
HOW_TO_TAG = (
    "record the forward inside the block: `with tracer.record(modules=True): loss = model(x).sum(); "
    "loss.backward()` (gradtrace run does this for every script)"
)


@dataclass(frozen=True)
class Coverage:
    """How many nodes carry a module tag, and where the others sit."""

    nodes: int
    tagged: int
    after_output: int  # untagged, no tagged node above (the loss)
    before_inputs: int  # untagged, no tagged node below (the inputs' side)
    between: int  # untagged with tagged nodes above and below
    hooked: bool  # the pass was recorded with module hooks on (Trace.modules lists modules)
    untagged_params: tuple[str, ...] = ()  # parameters of hooked modules whose nodes got no tag

    @property
    def untagged(self) -> int:
        return self.nodes - self.tagged

    @property
    def partial(self) -> bool:
        """Tags on part of the model only: the module view would draw many of its nodes one by one."""
        many_between = self.between >= max(PARTIAL_LEAST, PARTIAL_SHARE * self.nodes)
        return self.tagged > 0 and (many_between or bool(self.untagged_params))

    def short(self) -> str:
        """One line for under a picture's title."""
        return (
            f"⚠ partial module tags: {self.tagged} of {self.nodes} nodes tagged; {self.between} untagged inside the "
            f"model, {len(self.untagged_params)} parameters untagged (its forward ran partly outside the record() "
            "block)"
        )

    def explain(self) -> str:
        """One paragraph: how many nodes are tagged and why the rest are not."""
        head = f"{self.tagged} of {self.nodes} backward nodes carry a module tag"
        if self.tagged == 0:
            if self.hooked:
                return (
                    f"{head}: the module hooks were on while the pass was recorded, but no module's forward ran "
                    f"inside the block (the forward ran before it opened); {HOW_TO_TAG}"
                )
            return f"{head}: the pass was recorded without module hooks; {HOW_TO_TAG}"
        parts = []
        if self.after_output:
            parts.append(f"{self.after_output} come after the model's output (the loss)")
        if self.before_inputs:
            parts.append(f"{self.before_inputs} come before its inputs")
        if self.between:
            parts.append(
                f"{self.between} lie between tagged nodes but were made outside any module's forward that the hooks saw"
            )
        text = head + ("; of the others, " + ", ".join(parts) if parts else "") + "."
        if self.untagged_params:
            more = ", …" if len(self.untagged_params) > 3 else ""
            names = ", ".join(repr(p) for p in self.untagged_params[:3]) + more
            text += (
                f" {len(self.untagged_params)} parameters of the recorded modules ({names}) got no tag: the forward "
                "that used them ran outside the module hooks."
            )
        if self.partial:
            text += (
                " The model's forward ran (partly) outside the record() block, and the module view draws its untagged "
                f"nodes one by one: {HOW_TO_TAG}."
            )
        return text


def coverage(trace: Trace) -> Coverage:
    """Count tagged nodes and sort the untagged ones by where they sit (linear in the size of the pass)."""
    nodes = trace.nodes
    children: dict[int, list[int]] = {n.id: [e.target for e in n.edges if e.target is not None] for n in nodes}
    order = _topological(children)
    tagged = {n.id for n in nodes if n.module is not None}
    above: set[int] = set()  # nodes with a tagged node above them (towards the seed), or tagged themselves
    for i in order:
        if i in tagged or i in above:
            above.update(children[i])
    below: set[int] = set()  # nodes with a tagged node below them (towards the leaves)
    for i in reversed(order):
        if any(c in tagged or c in below for c in children[i]):
            below.add(i)
    after = before = between = 0
    for n in nodes:
        if n.id in tagged:
            continue
        up, down = n.id in above, n.id in below
        if up and down:
            between += 1
        elif down:
            after += 1
        else:
            before += 1
    untagged_params = tuple(
        n.leaf for n in nodes if n.leaf is not None and n.module is None and n.leaf.rpartition(".")[0] in trace.modules
    )
    return Coverage(len(nodes), len(tagged), after, before, between, bool(trace.modules), untagged_params)


def _topological(children: dict[int, list[int]]) -> list[int]:
    """Node ids so that every node comes before the nodes its edges lead to."""
    indegree = dict.fromkeys(children, 0)
    for targets in children.values():
        for c in targets:
            if c in indegree:
                indegree[c] += 1
    ready = [i for i, d in indegree.items() if d == 0]
    out = []
    while ready:
        i = ready.pop()
        out.append(i)
        for c in children[i]:
            if c in indegree:
                indegree[c] -= 1
                if indegree[c] == 0:
                    ready.append(c)
    return out
