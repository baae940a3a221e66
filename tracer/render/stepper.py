"""A self-contained HTML stepper through a pass's vector-Jacobian steps: one frame (inline SVG + caption) per step,
previous/next buttons, a slider and the arrow keys. No network: SVG, CSS and JS are all inline.

`fragment()` is embeddable (a notebook cell, a page with several of them: every id carries a unique prefix and
the script touches only its own element); `page()` wraps it into a full HTML document.
"""

from __future__ import annotations

import re
from typing import Any

from ..analyse.naming import step_ref
from ..model.format import inline
from ..model.records import NoteKind, Step, Trace
from .dot import build
from .escape import page_text
from .frames import frames_of
from .graphviz_call import render_dot
from .html_page import digest_id, document, inline_svg, seed_names, theme_style
from .options import RenderOptions, for_trace
from .picture import plan

CSS = """
.gt-stepper{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;max-width:100%;outline:none}
.gt-stepper:focus-visible{outline:2px solid #8250df;outline-offset:4px}
.gt-stepper .gt-controls{display:flex;gap:.5em;align-items:center;flex-wrap:wrap;margin:.25em 0 .5em}
.gt-stepper .gt-controls input[type=range]{flex:1;min-width:8em}
.gt-stepper button{font:inherit;padding:.2em .8em;cursor:pointer}
.gt-stepper .gt-frame{margin:0}
.gt-stepper .gt-frame[hidden]{display:none}
.gt-stepper figcaption{margin:.25em 0 .5em;line-height:1.4}
.gt-stepper svg{max-width:100%;height:auto}
""".strip()

# Plain ES5, scoped to one root element; the active frame is marked with data-active="true" and the root
# carries data-step, so tests and readers can check which step is shown.
SCRIPT = """
(function (root) {
  if (!root) { return; }
  var frames = root.querySelectorAll(".gt-frame");
  var slider = root.querySelector(".gt-slider");
  var current = root.querySelector(".gt-current");
  var prev = root.querySelector(".gt-prev");
  var next = root.querySelector(".gt-next");
  var count = frames.length;
  function show(step) {
    step = Math.max(1, Math.min(count, step));
    for (var i = 0; i < count; i++) {
      var on = i === step - 1;
      frames[i].hidden = !on;
      frames[i].setAttribute("data-active", on ? "true" : "false");
    }
    root.setAttribute("data-step", String(step));
    slider.value = String(step);
    current.textContent = String(step);
    prev.disabled = step === 1;
    next.disabled = step === count;
  }
  function step() { return parseInt(root.getAttribute("data-step"), 10); }
  prev.addEventListener("click", function () { show(step() - 1); });
  next.addEventListener("click", function () { show(step() + 1); });
  slider.addEventListener("input", function () { show(parseInt(slider.value, 10)); });
  root.addEventListener("keydown", function (e) {
    if (e.key === "ArrowLeft") { show(step() - 1); e.preventDefault(); }
    if (e.key === "ArrowRight") { show(step() + 1); e.preventDefault(); }
  });
  root.addEventListener("click", function (e) {
    if (e.target === root || e.target.closest(".gt-frame")) { root.focus(); }
  });
  show(step());
})(document.getElementById("%(uid)s"));
""".strip()


def default_uid(trace: Trace, opts: RenderOptions) -> str:
    """A deterministic element id: the same picture gives the same page, byte for byte. It hashes the DOT
    (what is drawn, with file basenames), not the JSON: the same script run from another folder records its
    absolute path, and the page must not change with it."""

    return digest_id(build(trace, opts) + repr(opts))


_UID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


def fragment(trace: Trace, *, uid: str | None = None, **options: Any) -> str:
    """The stepper as an HTML fragment to embed; `uid` (default: from the trace) prefixes every element id."""

    opts = for_trace(trace, options)
    if uid is None:
        uid = default_uid(trace, opts)
    elif not _UID.match(uid):
        raise ValueError(f"uid must start with a letter and hold only letters, digits, '-' and '_', got {uid!r}")
    return _fragment(trace, opts, uid)


def _fragment(trace: Trace, opts: RenderOptions, uid: str) -> str:

    steps = trace.steps
    out = [f'<div class="gt-stepper" id="{uid}" data-step="1" data-steps="{len(steps)}" tabindex="0">']
    out.append(f"<style>{CSS}</style>")
    title = f"{trace.kind} pass: {len(steps)} vector-Jacobian step{'s' if len(steps) != 1 else ''}"
    if not steps:
        drawing = plan(trace, opts, full_only=True)
        drawing.check_size()
        picture = inline_svg(render_dot(drawing.dot(), "svg").decode("utf-8"), f"{uid}-f0-")
        out.append(f'<p class="gt-title">{page_text(title)}: this pass ran no step.</p>')
        out.append(f'<figure class="gt-static">{picture}</figure></div>')
        return "\n".join(out) + "\n"
    pictures = frames_of(trace, opts, "svg")
    count = len(steps)
    out.append(
        '<div class="gt-controls">'
        '<button type="button" class="gt-prev" aria-label="Previous step">Previous</button>'
        f'<input type="range" class="gt-slider" min="1" max="{count}" value="1" step="1" aria-label="Step">'
        '<button type="button" class="gt-next" aria-label="Next step">Next</button>'
        f'<span class="gt-counter">step <b class="gt-current">1</b> of {count}</span>'
        "</div>"
    )
    for k, (step, data) in enumerate(zip(steps, pictures, strict=True), start=1):
        hidden = "" if k == 1 else " hidden"
        active = "true" if k == 1 else "false"
        out.append(f'<figure class="gt-frame" data-step="{k}" data-active="{active}"{hidden}>')
        out.append(f"<figcaption>{page_text(caption(trace, step, opts))}</figcaption>")
        out.append(inline_svg(data.decode("utf-8"), f"{uid}-f{k}-"))
        out.append("</figure>")
    out.append(f"<script>{SCRIPT % {'uid': uid}}</script>")
    out.append("</div>")
    return "\n".join(out) + "\n"


def caption(trace: Trace, step: Step, opts: RenderOptions) -> str:
    """What happens in one step, in words, with the numbers."""

    def show(info: Any) -> str:
        return inline(info, opts.precision, opts.max_elements)

    v = ", ".join(show(x) for x in step.v) if step.v else "nothing"
    head = f"Step {step.id} of {len(trace.steps)}: {step.name} (forward: {step.op}) receives v = {v}"
    if step.leaf is not None:
        leaf = trace.leaves.get(step.leaf)
        if leaf is not None and leaf.kind == "leaf" and leaf.grad is not None:
            return f"{head} and adds it to {leaf.name}.grad: {show(leaf.grad_before)} → {show(leaf.grad_total)}."
        return f"{head} for leaf {step.leaf}."
    if step.note_kind is NoteKind.RAISED:
        return f"{head}; it {step.note}."
    sent = []
    for k, e in enumerate(step.edges):
        g = step.vjp[k] if k < len(step.vjp) else None
        if e.target is None:
            continue
        target = trace.node(e.target)
        where = step_ref(target) + ("" if target.executed else " (not run)")
        if target.leaf:
            where += f" ({target.leaf})"
        sent.append(f"{show(g)} to {where}")
    if not sent:
        return f"{head} and sends nothing on."
    return f"{head} and sends vᵀJ = " + "; ".join(sent) + "."


def page(trace: Trace, **options: Any) -> str:
    """A complete HTML document around the stepper (deterministic: no dates, no absolute paths)."""

    opts = for_trace(trace, options)
    body = _fragment(trace, opts, default_uid(trace, opts))
    focus = "<script>(function(){var s=document.querySelector('.gt-stepper');if(s){s.focus();}})();</script>\n"
    return document(f"gradtrace: backward of {seed_names(trace)}", theme_style(opts.theme), body + focus)
