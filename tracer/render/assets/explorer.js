/* gradtrace explorer: pan, zoom, search, node details, module boxes that open, and the step-by-step walk as a
   highlight over the one picture. Plain ES5, no network, scoped to one root element (several may share a page).
   State readable by tests: root[data-step], root[data-selected], root[data-zoom], .gt-x-box[data-path]. */
(function (root) {
  "use strict";
  if (!root) { return; }
  var NS = "http://www.w3.org/2000/svg";
  var data = JSON.parse(root.querySelector(".gt-x-data").textContent);
  var prefix = root.id + "-";
  var view = root.querySelector(".gt-x-view");
  var svg = view.querySelector("svg");
  var graph = svg.querySelector("g.graph");
  var panel = root.querySelector(".gt-x-panel");
  var walk = root.querySelector(".gt-x-walk");
  var input = root.querySelector(".gt-x-search");
  var results = root.querySelector(".gt-x-results");
  var vb = svg.viewBox.baseVal;
  svg.setAttribute("width", String(vb.width));
  svg.setAttribute("height", String(vb.height));

  // ---------------------------------------------------------------- the data, indexed
  var nodes = {}, element = {}, edgesFrom = {}, steps = data.steps;
  data.nodes.forEach(function (n) {
    nodes[n.id] = n;
    element[n.id] = document.getElementById(prefix + "n" + n.id);
  });
  Array.prototype.forEach.call(graph.querySelectorAll("g.edge, g.node"), function (g) {
    var m = /-(?:e|const)(\d+)_\d+$/.exec(g.id);
    if (m) { (edgesFrom[m[1]] = edgesFrom[m[1]] || []).push(g); }
  });
  var modules = {}, members = {};
  data.modules.forEach(function (m) { modules[m.path] = m; members[m.path] = []; });
  function chain(path) {  // the module and its ancestors, outermost first
    var out = [];
    while (path !== null && path !== undefined && modules[path]) { out.unshift(path); path = modules[path].parent; }
    return out;
  }
  data.nodes.forEach(function (n) {
    if (n.module) { chain(n.module).forEach(function (p) { members[p].push(n.id); }); }
  });
  var firstStep = {};
  Object.keys(members).forEach(function (p) {
    var s = Infinity;
    members[p].forEach(function (i) { if (nodes[i].step && nodes[i].step < s) { s = nodes[i].step; } });
    firstStep[p] = s;
  });

  // ---------------------------------------------------------------- pan and zoom
  var z = { s: 1, x: 0, y: 0 };
  function apply() {
    svg.style.transform = "translate(" + z.x + "px," + z.y + "px) scale(" + z.s + ")";
    root.setAttribute("data-zoom", z.s.toFixed(4));
  }
  function zoomAt(px, py, factor) {
    var s = Math.max(0.002, Math.min(8, z.s * factor));
    factor = s / z.s;
    z.x = px - (px - z.x) * factor;
    z.y = py - (py - z.y) * factor;
    z.s = s;
    apply();
  }
  function fitWidth() {  // the top of the picture (the seed) at a width that fits, the first closed box in view
    z.s = Math.min(1, view.clientWidth / vb.width);
    z.x = (view.clientWidth - vb.width * z.s) / 2;
    z.y = 0;
    apply();
    var first = null;  // the box nearest the seed
    Array.prototype.forEach.call(boxes.childNodes, function (g) {
      if (!first || g.getBoundingClientRect().top < first.getBoundingClientRect().top) { first = g; }
    });
    if (first) {
      var bottom = first.getBoundingClientRect().bottom - view.getBoundingClientRect().top;
      if (bottom > view.clientHeight) { zoomAt(view.clientWidth / 2, 0, 0.95 * view.clientHeight / bottom); }
    }
  }
  function fitAll() {
    z.s = Math.min(view.clientWidth / vb.width, view.clientHeight / vb.height);
    z.x = (view.clientWidth - vb.width * z.s) / 2;
    z.y = (view.clientHeight - vb.height * z.s) / 2;
    apply();
  }
  function centre(el, least) {  // bring an element to the middle of the view, zoomed in to at least `least`
    if (least && z.s < least) {
      var r0 = view.getBoundingClientRect();
      zoomAt(r0.width / 2, r0.height / 2, least / z.s);
    }
    var r = el.getBoundingClientRect(), v = view.getBoundingClientRect();
    z.x += (v.left + v.width / 2) - (r.left + r.width / 2);
    z.y += (v.top + v.height / 2) - (r.top + r.height / 2);
    apply();
  }
  function fitTo(el) {  // zoom (to at most 1) so that the element fills most of the view, and centre it
    var r = el.getBoundingClientRect();
    if (r.width > 0 && r.height > 0) {
      var factor = Math.min(0.9 * view.clientWidth / r.width, 0.9 * view.clientHeight / r.height, 1 / z.s);
      zoomCentre(factor);
    }
    centre(el, 0);
  }
  function inView(el) {
    var r = el.getBoundingClientRect(), v = view.getBoundingClientRect();
    return r.left >= v.left && r.right <= v.right && r.top >= v.top && r.bottom <= v.bottom;
  }
  view.addEventListener("wheel", function (e) {  // the wheel scrolls; with Ctrl (a trackpad's pinch) it zooms
    e.preventDefault();
    if (e.ctrlKey || e.metaKey) {
      var v = view.getBoundingClientRect();
      zoomAt(e.clientX - v.left, e.clientY - v.top, Math.exp(-e.deltaY * 0.004));
    } else {
      z.x -= e.shiftKey ? e.deltaY : e.deltaX;
      z.y -= e.shiftKey ? 0 : e.deltaY;
      apply();
    }
  }, { passive: false });
  function zoomCentre(factor) { zoomAt(view.clientWidth / 2, view.clientHeight / 2, factor); }
  var drag = null, dragged = false;
  view.addEventListener("pointerdown", function (e) {
    if (e.button !== 0) { return; }
    drag = { x: e.clientX, y: e.clientY, zx: z.x, zy: z.y, moved: false };
  });
  window.addEventListener("pointermove", function (e) {
    if (!drag) { return; }
    var dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (!drag.moved && Math.abs(dx) + Math.abs(dy) > 4) { drag.moved = true; view.classList.add("gt-x-dragging"); }
    if (drag.moved) { z.x = drag.zx + dx; z.y = drag.zy + dy; apply(); }
  });
  window.addEventListener("pointerup", function () {
    if (drag && drag.moved) { dragged = true; }
    drag = null;
    view.classList.remove("gt-x-dragging");
  });

  // ---------------------------------------------------------------- module boxes
  var open = {};
  data.modules.forEach(function (m) {
    open[m.path] = data.open_below === null || m.depth < data.open_below;
  });
  var boxes = document.createElementNS(NS, "g");
  var marks = document.createElementNS(NS, "g");
  graph.appendChild(boxes);
  graph.appendChild(marks);
  var bboxes = {};
  function bbox(path) {  // a module's area: its nodes' boxes together, with a margin
    if (bboxes[path]) { return bboxes[path]; }
    var x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    members[path].forEach(function (i) {
      var el = element[i];
      if (!el) { return; }
      var b = el.getBBox();
      x0 = Math.min(x0, b.x); y0 = Math.min(y0, b.y);
      x1 = Math.max(x1, b.x + b.width); y1 = Math.max(y1, b.y + b.height);
    });
    bboxes[path] = x0 === Infinity ? null : { x: x0 - 8, y: y0 - 8, w: x1 - x0 + 16, h: y1 - y0 + 16 };
    return bboxes[path];
  }
  function closedHolder(id) {  // the outermost closed module holding node `id`, or null when it is shown
    var n = nodes[id];
    if (!n || !n.module) { return null; }
    var c = chain(n.module);
    for (var i = 0; i < c.length; i++) { if (!open[c[i]]) { return c[i]; } }
    return null;
  }
  function svgText(parent, x, y, size, words, bold) {
    var t = document.createElementNS(NS, "text");
    t.setAttribute("x", String(x)); t.setAttribute("y", String(y));
    t.setAttribute("font-size", String(size)); t.setAttribute("text-anchor", "middle");
    if (bold) { t.setAttribute("font-weight", "bold"); }
    t.textContent = words;
    parent.appendChild(t);
  }
  function drawBoxes() {
    while (boxes.firstChild) { boxes.removeChild(boxes.firstChild); }
    data.modules.forEach(function (m) {
      if (open[m.path]) { return; }
      if (m.parent !== null && modules[m.parent] && closedAbove(m.parent)) { return; }
      var b = bbox(m.path);
      if (!b) { return; }
      var g = document.createElementNS(NS, "g");
      g.setAttribute("class", "gt-x-box");
      g.setAttribute("data-path", m.path);
      var title = document.createElementNS(NS, "title");
      title.textContent = m.path + " (" + m.cls + "): click to open";
      g.appendChild(title);
      var r = document.createElementNS(NS, "rect");
      r.setAttribute("class", "gt-x-boxbg");
      r.setAttribute("x", String(b.x)); r.setAttribute("y", String(b.y));
      r.setAttribute("width", String(b.w)); r.setAttribute("height", String(b.h));
      r.setAttribute("rx", "10");
      g.appendChild(r);
      var lines = [m.cls + " · " + m.nodes + " nodes", "grad in " + m.grad_in, "grad out " + m.grad_out,
        "params ‖·‖ " + m.params + " (" + m.param_count + ")"];
      var widest = Math.max(m.path.length * 1.25, Math.max.apply(null, lines.map(function (l) { return l.length; })));
      var size = Math.max(6, Math.min(0.9 * b.w / (0.6 * widest), b.h / 8, 40));
      var cx = b.x + b.w / 2, cy = b.y + Math.min(b.h / 2 - 2.5 * size, 400);
      svgText(g, cx, cy, size * 1.25, m.path, true);
      lines.forEach(function (l, i) { svgText(g, cx, cy + (1.5 + 1.2 * i) * size, size, l); });
      boxes.appendChild(g);
    });
    markStep();
    markSelection();
  }
  function closedAbove(path) {  // some module from `path` up is closed
    var c = chain(path);
    for (var i = 0; i < c.length; i++) { if (!open[c[i]]) { return true; } }
    return false;
  }
  function setOpen(path, value) { open[path] = value; drawBoxes(); }
  function reveal(path) {  // open every module holding `path` (not `path` itself)
    chain(path).slice(0, -1).forEach(function (p) { open[p] = true; });
  }
  function boxOf(path) { return boxes.querySelector('.gt-x-box[data-path="' + cssEscape(path) + '"]'); }
  function cssEscape(s) { return s.replace(/["\\]/g, "\\$&"); }

  // ---------------------------------------------------------------- marks: the step and the selection
  function rectAround(b, cls, pad) {
    var r = document.createElementNS(NS, "rect");
    r.setAttribute("class", cls);
    r.setAttribute("x", String(b.x - pad)); r.setAttribute("y", String(b.y - pad));
    r.setAttribute("width", String(b.width + 2 * pad)); r.setAttribute("height", String(b.height + 2 * pad));
    r.setAttribute("rx", "8");
    marks.appendChild(r);
    return r;
  }
  function shownElement(id) {  // what stands for node `id` in the picture: itself, or the closed box holding it
    var holder = closedHolder(id);
    return holder === null ? element[id] : boxOf(holder);
  }
  var step = 0, selected = null, stepMark = null;
  function markStep() {
    if (stepMark && stepMark.parentNode) { stepMark.parentNode.removeChild(stepMark); }
    stepMark = null;
    Array.prototype.forEach.call(boxes.childNodes, function (g) {
      var later = step > 0 && firstStep[g.getAttribute("data-path")] > step;
      g.classList.toggle("gt-x-later", later);
    });
    if (step === 0) { return; }
    var el = shownElement(step);
    if (!el) { return; }
    var b = el.getBBox();
    stepMark = rectAround(b, "gt-x-mark", 6);
  }
  var selMark = null;
  function markSelection() {
    if (selMark && selMark.parentNode) { selMark.parentNode.removeChild(selMark); }
    selMark = null;
    var el = null;
    if (selected !== null && selected.node !== undefined) { el = shownElement(selected.node); }
    if (selected !== null && selected.module !== undefined) {
      el = boxOf(selected.module);
      var area = bbox(selected.module);
      if (!el && area) { selMark = rectAround({ x: area.x, y: area.y, width: area.w, height: area.h }, "gt-x-sel", 4); }
    }
    if (el) { selMark = rectAround(el.getBBox(), "gt-x-sel", 12); }
  }
  function later(id, on) {
    var el = element[id];
    if (el) { el.classList.toggle("gt-x-later", on); }
    (edgesFrom[id] || []).forEach(function (g) { g.classList.toggle("gt-x-later", on); });
  }
  function setStep(k) {
    k = Math.max(0, Math.min(steps, k));
    if (Math.abs(k - step) === 1 && step > 0 && k > 0) {
      later(Math.max(k, step), k < step);
    } else {
      data.nodes.forEach(function (n) { if (n.step) { later(n.id, k > 0 && n.step > k); } });
    }
    step = k;
    root.setAttribute("data-step", String(k));
    markStep();
    if (k === 0) {
      walk.setAttribute("data-idle", "true");
      walk.textContent = "Step through the pass with → and ← (Home: back to the whole picture): each step is " +
        "highlighted where it sits in the picture, the later ones faded.";
      return;
    }
    walk.setAttribute("data-idle", "false");
    var n = nodes[k];
    if (closedHolder(k) !== null) {  // the walk opens the module it enters, so the step itself is seen
      chain(n.module).forEach(function (p) { open[p] = true; });
      drawBoxes();
    }
    walk.textContent = n.caption + (n.module ? "  [" + n.module + "]" : "");
    var el = shownElement(k);
    if (el && !inView(el)) { centre(el, 0.8); }  // a step out of sight is brought in, readable
  }

  // ---------------------------------------------------------------- the details panel
  function clear(el) { while (el.firstChild) { el.removeChild(el.firstChild); } }
  function add(parent, tag, text, cls) {
    var el = document.createElement(tag);
    if (text !== undefined && text !== null) { el.textContent = text; }
    if (cls) { el.className = cls; }
    parent.appendChild(el);
    return el;
  }
  function button(parent, text, action) {
    var b = add(parent, "button", text);
    b.type = "button";
    b.addEventListener("click", action);
    return b;
  }
  function showNode(id) {
    var n = nodes[id];
    selected = { node: id };
    root.setAttribute("data-selected", "n" + id);
    clear(panel);
    add(panel, "h3", n.label + (n.leaf ? " · " + n.leaf : ""));
    var p = add(panel, "p", null, "gt-x-muted");
    p.textContent = "forward: " + n.op + (n.source ? " · " + n.source : "") + (n.module ? " · module " + n.module : "");
    if (n.step) { button(panel, "Walk from here", function () { setStep(n.step); root.focus(); }); }
    if (n.module) {
      chain(n.module).forEach(function (path) {
        if (open[path]) {
          button(panel, "Close " + path, function () { setOpen(path, false); showModule(path); });
        }
      });
    }
    add(panel, "pre", n.details.join("\n"), "gt-x-details");
    if (n.jacobian) {
      add(panel, "p", "local Jacobian J (rows: v, columns: vᵀJ):");
      var t = add(panel, "table");
      n.jacobian.forEach(function (row) {
        var tr = add(t, "tr");
        row.forEach(function (x) { add(tr, "td", x); });
      });
    }
    markSelection();
  }
  function showModule(path) {
    var m = modules[path];
    selected = { module: path };
    root.setAttribute("data-selected", "module:" + path);
    clear(panel);
    add(panel, "h3", path);
    add(panel, "pre", [
      "class: " + m.cls,
      "backward nodes: " + m.nodes,
      "grad in (its outputs received): " + m.grad_in,
      "grad out (sent to its inputs): " + m.grad_out,
      "parameters' gradient norm: " + m.params + " (" + m.param_count + " parameters)"
    ].join("\n"));
    if (!open[path]) {
      button(panel, "Open " + path, function () { openModule(path); });
    } else {
      button(panel, "Close " + path, function () { setOpen(path, false); showModule(path); });
    }
    markSelection();
  }
  function openModule(path) {
    reveal(path);
    open[path] = true;
    drawBoxes();
    showModule(path);
    if (selMark) { fitTo(selMark); }
  }

  // ---------------------------------------------------------------- search
  var index = [];
  Object.keys(data.leaves).forEach(function (name) { index.push({ kind: "leaf", text: name, node: data.leaves[name] }); });
  data.modules.forEach(function (m) { index.push({ kind: "module", text: m.path, extra: m.cls, module: m.path }); });
  data.nodes.forEach(function (n) {
    index.push({ kind: "op", text: n.label + " (" + n.op + ")", node: n.id });
  });
  var KIND = { leaf: 0, module: 1, op: 2 };
  var hits = [], active = 0;
  function search(q) {
    q = q.trim().toLowerCase();
    var out = [];
    if (!q) { return out; }
    index.forEach(function (e) {
      var t = e.text.toLowerCase() + (e.extra ? " " + e.extra.toLowerCase() : "");
      var at = t.indexOf(q);
      if (at < 0) { return; }
      var score = e.text.toLowerCase() === q ? 0 : (e.text.toLowerCase().slice(-q.length) === q ? 1 : 2);
      out.push({ e: e, score: score * 10 + KIND[e.kind], len: e.text.length });
    });
    out.sort(function (a, b) { return a.score - b.score || a.len - b.len || (a.e.text < b.e.text ? -1 : 1); });
    return out.slice(0, 40).map(function (h) { return h.e; });
  }
  function showHits() {
    clear(results);
    hits.forEach(function (e, i) {
      var li = add(results, "li");
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", i === active ? "true" : "false");
      add(li, "span", e.kind, "gt-x-kind");
      add(li, "span", e.text + (e.extra ? " (" + e.extra + ")" : ""));
      li.addEventListener("mousedown", function (ev) { ev.preventDefault(); go(e); });
    });
    results.hidden = hits.length === 0;
  }
  function go(e) {
    hits = []; showHits();
    input.blur();
    if (e.node !== undefined) {
      var n = nodes[e.node];
      if (n.module) { chain(n.module).forEach(function (p) { open[p] = true; }); }
      drawBoxes();
      showNode(e.node);
      centre(element[e.node], 1);
    } else {
      reveal(e.module);
      drawBoxes();
      showModule(e.module);
      if (selMark) { fitTo(selMark); }
    }
    root.focus({ preventScroll: true });
  }
  input.addEventListener("input", function () { hits = search(input.value); active = 0; showHits(); });
  input.addEventListener("keydown", function (e) {
    if (e.key === "ArrowDown") { active = Math.min(hits.length - 1, active + 1); showHits(); e.preventDefault(); }
    if (e.key === "ArrowUp") { active = Math.max(0, active - 1); showHits(); e.preventDefault(); }
    if (e.key === "Enter" && hits.length) { go(hits[active]); e.preventDefault(); }
    if (e.key === "Escape") { hits = []; showHits(); }
    e.stopPropagation();
  });
  input.addEventListener("blur", function () { setTimeout(function () { hits = []; showHits(); }, 150); });

  // ---------------------------------------------------------------- clicks, keys, toolbar
  view.addEventListener("click", function (e) {
    if (dragged) { dragged = false; return; }
    root.focus({ preventScroll: true });
    var box = e.target.closest(".gt-x-box");
    if (box) { openModule(box.getAttribute("data-path")); return; }
    var g = e.target.closest("g.node");
    var m = g && /-n(\d+)$/.exec(g.id);
    if (m) { showNode(parseInt(m[1], 10)); }
  });
  root.addEventListener("keydown", function (e) {
    if (e.target === input) { return; }
    if (e.key === "ArrowRight") { setStep(step + 1); e.preventDefault(); }
    if (e.key === "ArrowLeft") { setStep(step - 1); e.preventDefault(); }
    if (e.key === "Home") { setStep(0); e.preventDefault(); }
    if (e.key === "End") { setStep(steps); e.preventDefault(); }
    if (e.key === "/") { input.focus(); e.preventDefault(); }
    if (e.key === "+" || e.key === "=") { zoomCentre(1.25); e.preventDefault(); }
    if (e.key === "-") { zoomCentre(0.8); e.preventDefault(); }
  });
  function tool(name, action) {
    var b = root.querySelector(".gt-x-" + name);
    if (b) { b.addEventListener("click", action); }
  }
  tool("prev", function () { setStep(step - 1); root.focus(); });
  tool("next", function () { setStep(step + 1); root.focus(); });
  tool("fit", function () { fitAll(); });
  tool("in", function () { zoomCentre(1.25); });
  tool("out", function () { zoomCentre(0.8); });
  tool("width", function () { fitWidth(); });
  tool("expand", function () { Object.keys(open).forEach(function (p) { open[p] = true; }); drawBoxes(); });
  tool("collapse", function () {
    data.modules.forEach(function (m) { open[m.path] = data.open_below === null ? m.depth < 1 : m.depth < data.open_below; });
    drawBoxes();
  });

  drawBoxes();
  fitWidth();
  setStep(0);
  clear(panel);
  add(panel, "p", "Click a node or a module box for its details; search by leaf, module or operation (press / to " +
    "search). Drag or scroll to pan, Ctrl+wheel or + and − to zoom; → and ← walk the steps.", "gt-x-muted");
  if (data.coverage) { add(panel, "p", data.coverage, "gt-x-muted"); }
  root.setAttribute("data-ready", "true");
})(document.getElementById("%(uid)s"));
