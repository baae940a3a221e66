"""A JacobianResult as an HTML table for notebooks: labelled rows and columns, how it was computed and checked."""

from __future__ import annotations

from ..model.textfmt import num, shape
from ..record.jacobian import JacobianResult, element_labels
from ..render.escape import page_text

LIMIT = 24  # rows and columns shown; larger matrices show their top-left corner and their statistics

_TABLE = "border-collapse:collapse;font-variant-numeric:tabular-nums;margin:0.25em 0"
_CELL = "padding:0.1em 0.6em;text-align:right;border:1px solid #d0d7de"
_ZERO = _CELL + ";color:#8c959f"  # zeros in grey: the sparsity pattern (a diagonal, a one-hot row) stands out


def jacobian_html(result: JacobianResult, limit: int = LIMIT) -> str:
    """The matrix with its row (output element) and column (input element) labels, then method, passes, check."""
    rows, cols = result.shape
    outs = ", ".join(f"{n}{shape(s)}" for n, s in zip(result.output_names, result.output_shapes, strict=True))
    ins = ", ".join(f"{n}{shape(s)}" for n, s in zip(result.input_names, result.input_shapes, strict=True))
    dtype = str(result.matrix.dtype).removeprefix("torch.")
    out = ['<div class="gt-jacobian">']
    out.append(f"<p><b>Jacobian</b> of {page_text(outs)} w.r.t. {page_text(ins)}: {rows} × {cols} {dtype}</p>")
    out.append(_table(result, limit))
    facts = [f"method: {result._method_text()}", f"recorded: {result._recorded_text()}", _check_text(result)]
    if rows > limit or cols > limit:
        m = result.matrix.double()
        facts.insert(
            0,
            f"showing the first {min(rows, limit)} of {rows} rows and {min(cols, limit)} of {cols} columns; "
            f"‖J‖_F = {num(float(m.norm()))}, entries in [{num(float(m.min()))}, {num(float(m.max()))}]",
        )
    facts += [f"note: {n}" for n in result.notes]
    out.append("<ul>" + "".join(f"<li>{page_text(f)}</li>" for f in facts) + "</ul>")
    out.append("</div>")
    return "\n".join(out) + "\n"


def _table(result: JacobianResult, limit: int) -> str:
    rows, cols = result.shape
    row_labels = element_labels(result.output_names, result.output_shapes)[:limit]
    col_labels = element_labels(result.input_names, result.input_shapes)[:limit]
    values = result.matrix[:limit, :limit].tolist()
    more_cols = cols > limit
    head = "".join(f'<th style="{_CELL}">{page_text(c)}</th>' for c in col_labels)
    head += f'<th style="{_CELL}">…</th>' if more_cols else ""
    lines = [f'<table style="{_TABLE}">', f'<thead><tr><th style="{_CELL}"></th>{head}</tr></thead>', "<tbody>"]
    for label, row in zip(row_labels, values, strict=True):
        cells = "".join(f'<td style="{_ZERO if v == 0 else _CELL}">{num(float(v))}</td>' for v in row)
        cells += f'<td style="{_CELL}">…</td>' if more_cols else ""
        lines.append(f'<tr><th style="{_CELL}">{page_text(label)}</th>{cells}</tr>')
    if rows > limit:
        filler = "".join(f'<td style="{_CELL}">⋮</td>' for _ in range(len(col_labels) + more_cols))
        lines.append(f'<tr><th style="{_CELL}">⋮</th>{filler}</tr>')
    lines += ["</tbody>", "</table>"]
    return "\n".join(lines)


def _check_text(result: JacobianResult) -> str:
    if result.check is None:
        return f"check: none ({result.check_note})"
    verdict = "equals" if result.check.ok else "DIFFERS FROM"
    return (
        f"check: {verdict} {result.check.reference} "
        f"(max error {num(result.check.max_error)}, tolerance {num(result.check.tolerance)})"
    )
