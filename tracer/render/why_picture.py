"""The picture of a why answer: the path from the output towards the target, ending where it was cut, the cut
drawn as a dashed "no grad" stub carrying its cause and line (DOT as string work; Graphviz in graphviz_call)."""

from __future__ import annotations

from ..analyse.why_text import NO_GRAD_FN
from ..model.why_records import ERROR_CAUSES, ZERO_CAUSES, Cause, PathStep, WhyAnswer
from .escape import dot_string, plain_label
from .graphviz_call import render_dot
from .style import THEMES

FORMATS = ("svg", "png", "pdf", "dot")


def _place(step: PathStep) -> str:
    if step.file is None or step.line is None:
        return ""
    return f"{step.file.replace(chr(92), '/').rsplit('/', 1)[-1]}:{step.line}"


def _label(step: PathStep) -> list[str]:
    lines = [step.node]
    if step.kind == "cut":
        lines = [f"cut: {step.node}"]
        if step.op.replace("-", "_") not in step.node:  # 'no-grad' under `mul`; not 'detach' under `.detach()`
            lines.append(step.op)
    elif step.op and step.kind != "target":
        lines.append(step.op)
    place = _place(step)
    if place:
        lines.append(place)
    if step.note and step.kind != "cut":
        lines.append(step.note)
    return lines


def _title(answer: WhyAnswer) -> str:
    if answer.cause is Cause.REACHED:
        return f"why: {answer.target} got its gradient"
    if answer.cause in ERROR_CAUSES:
        return f"why backward failed: {answer.cause.value}"
    what = "zero" if answer.cause in ZERO_CAUSES else "None"
    return f"why {answer.target}.grad is {what}: {answer.cause.value}"


def why_dot(answer: WhyAnswer, *, theme: str = "light") -> str:
    """DOT text of the answer's path, top (the output) to bottom (the target or the cut)."""
    colours = THEMES[theme]
    out = [
        "digraph why {",
        f"  graph [rankdir=TB, bgcolor={dot_string(colours.background)}, fontname={dot_string(colours.font)}, "
        f"labelloc=t, fontsize=13, label={plain_label([_title(answer)])}, fontcolor={dot_string(colours.text)}];",
        f'  node [shape=box, style="rounded,filled", fontname={dot_string(colours.font)}, fontsize=11, '
        f"fillcolor={dot_string(colours.panel)}, color={dot_string(colours.muted)}, "
        f"fontcolor={dot_string(colours.text)}];",
        f"  edge [color={dot_string(colours.muted)}, arrowsize=0.7];",
    ]
    zero_node = answer.node if answer.cause in ZERO_CAUSES else None
    for i, step in enumerate(answer.path):
        attrs = [f"label={plain_label(_label(step))}", f"tooltip={dot_string(' · '.join(_label(step)))}"]
        if step.kind == "output":
            attrs.append(f"fillcolor={dot_string(colours.header)}")
        elif step.kind == "cut":
            attrs += ['style="dashed,rounded"', f"color={dot_string(colours.warning)}", "penwidth=1.5"]
        elif step.note == NO_GRAD_FN:
            attrs += ['style="dashed,rounded"', f"color={dot_string(colours.none)}"]
        elif step.kind == "target":
            attrs += ["shape=ellipse", 'style="filled"', f"fillcolor={dot_string(colours.header)}"]
        if zero_node is not None and step.node == zero_node and step.note:
            attrs += [f"color={dot_string(colours.zero)}", "penwidth=2"]
        out.append(f"  n{i} [{', '.join(attrs)}];")
    zeroed = False  # below the node that sent zeros, the gradient is zero
    for i in range(len(answer.path) - 1):
        nxt = answer.path[i + 1]
        after_cut = answer.path[i].kind == "cut"
        zeroed = zeroed or (zero_node is not None and answer.path[i].node == zero_node and bool(answer.path[i].note))
        if zeroed:
            out.append(
                f"  n{i} -> n{i + 1} [style=dashed, color={dot_string(colours.zero)}, label={plain_label(['0'])}, "
                f"fontsize=10, fontcolor={dot_string(colours.zero)}];"
            )
        elif nxt.kind == "cut" or after_cut or nxt.note == NO_GRAD_FN:
            label = "no gradient" if after_cut else ("no grad_fn" if nxt.note == NO_GRAD_FN else "")
            out.append(
                f"  n{i} -> n{i + 1} [style=dashed, color={dot_string(colours.none)}, label={plain_label([label])}, "
                f"fontsize=10, fontcolor={dot_string(colours.none)}];"
            )
        else:
            out.append(f"  n{i} -> n{i + 1};")
    out.append("}")
    return "\n".join(out) + "\n"


def why_picture(answer: WhyAnswer, fmt: str = "svg", *, theme: str = "light") -> bytes:
    """The answer drawn in one of FORMATS."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format: {fmt!r} (must be one of {list(FORMATS)})")
    if theme not in THEMES:
        raise ValueError(f"unknown theme: {theme!r} (must be one of {sorted(THEMES)})")
    text = why_dot(answer, theme=theme)
    return text.encode("utf-8") if fmt == "dot" else render_dot(text, fmt)
