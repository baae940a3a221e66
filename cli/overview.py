"""`gradtrace run`'s overview of every pass: the timeline chart and its numbers, and the line saying what was drawn.

A long script makes thousands of passes; run draws the ones `--passes` chooses (by default the first, the last and
every flagged one) and summarises all of them here: SCRIPT.timeline.svg (the heatmap of gradient norms per module
across passes, and lines for a few), SCRIPT.timeline.csv (the numbers, one row per pass and module or leaf).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import click

from .outputs import rank_part
from .report import plural

if TYPE_CHECKING:
    import tracer
    from tracer.model.digest import PassDigest
    from tracer.model.pass_selection import PassSelection

    from .outputs import OutputFolder

# first-flagged, not flagged: run draws only the first pass with each kind of flag (DrawChoice), so the recorder
# keeps only those; a thousand later flagged passes cost their digest alone
DEFAULT_PASSES = "first,last,first-flagged"
OVERVIEW_FORMATS = ("svg", "csv")


class PassSelectionType(click.ParamType):
    """Click parameter type for --passes: the library's own parser (tracer/model/pass_selection.py), whose error
    names the bad part and the accepted forms."""

    name = "SPEC"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> PassSelection:
        from tracer.model.pass_selection import PassSelection, PassSelectionError, parse_pass_selection

        if isinstance(value, PassSelection):
            return value
        try:
            return parse_pass_selection(str(value))
        except PassSelectionError as exc:
            self.fail(str(exc), param, ctx)


def overview_names(source_stem: str, rank: int | None) -> list[str]:
    """'train.timeline.svg', 'train.timeline.csv' (with '.rank1' under torch.distributed)."""
    return [f"{source_stem}{rank_part(rank)}.timeline.{fmt}" for fmt in OVERVIEW_FORMATS]


def write_overview(folder: OutputFolder, names: list[str], line: tracer.Timeline, source: str) -> list[str]:
    """Write the timeline as SVG (titled with the `source` script's name) and CSV under `names` (claimed first: the
    manifest owns them); the names written."""
    folder.claim(names)
    title = f"{source}: gradient norm per module across {plural(len(line), 'pass', 'passes')}"
    for name in names:
        text = line.svg(title=title) if name.endswith(".svg") else line.to_csv()
        folder.write_text(name, text)
    return names


def described(selection: PassSelection, ranges: Sequence[object] = ()) -> str:
    """The passes chosen for drawing, in words: the selection's, or the --pass ranges when they chose."""
    if ranges and selection.everything:
        return f"--pass {','.join(str(r) for r in ranges)}"
    # what run draws of the flagged passes (DrawChoice): each kind of flag where it first appears
    return (
        selection.describe()
        .replace("every flagged pass (NaN, Inf, vanishing, exploding)", "the first pass with each health flag")
        .replace("each health flag (NaN, Inf, vanishing, exploding)", "each health flag")
    )


def drawn_line(choice: str, drawn: list[int], total: int, overview: list[str], flagged_not_drawn: int = 0) -> str:
    """What run drew and what it summarised: 'drew 3 of 2,000 passes (the first pass, ...: 1, 150, 2000); all are
    summarised in train.timeline.svg and train.timeline.csv'."""
    shown = ", ".join(str(i) for i in drawn[:12]) + (f", … (+{len(drawn) - 12} more)" if len(drawn) > 12 else "")
    what = f"drew {len(drawn):,} of {plural(total, 'pass', 'passes').replace(str(total), f'{total:,}', 1)}"
    what += f" ({choice}{': ' + shown if drawn else ''})"
    if flagged_not_drawn:
        what += (
            f"; {plural(flagged_not_drawn, 'more flagged pass', 'more flagged passes')} not drawn (their flags "
            "were drawn before; --passes all or their numbers draw them)"
        )
    if overview:
        what += f"; {'the pass is' if total == 1 else 'all are'} summarised in {' and '.join(overview)}"
    return what


class DrawChoice:
    """Which of the passes the recorder keeps `gradtrace run` draws, asked as each kept pass ends.

    The recorder keeps the passes the selection names (record(keep=...)). Of those kept only for their health flags,
    run draws the first pass to carry each kind of flag (the first NaN, the first Inf, the first vanishing and the
    first exploding gradient: where each problem starts), not each of a thousand flagged passes — the overview
    marks every one of them, and `--passes all` or their numbers draw them. `--pass` ranges, when given, must also
    name the pass. The last pass is drawn when the script has ended (`last`).
    """

    def __init__(self, selection: PassSelection, wanted: Callable[[int], bool]) -> None:
        self.selection = selection
        self.wanted = wanted  # --pass
        self.recorder: tracer.Recorder | None = None  # given when the block opens (on_open)
        self.seen: set[str] = set()  # the kinds of flag a drawn pass has carried
        self.flagged_skipped: set[int] = set()  # kept for their flags, not drawn (flags drawn before)

    def opened(self, recorder: tracer.Recorder) -> None:
        self.recorder = recorder

    def __call__(self, index: int) -> bool:
        if not self.wanted(index):
            return False
        if self.selection.selects(index, is_last=False, flagged=False):
            return True  # named by all, first, every:N or a number
        if not (self.selection.flagged or self.selection.first_flagged) or self.recorder is None:
            return False  # kept as the last pass: last() draws it
        flags = _flags_of(self.recorder.digests, index)
        new = set(flags) - self.seen
        self.seen.update(flags)
        if not new:
            self.flagged_skipped.add(index)
        return bool(new)

    def last(self, digests: Sequence[PassDigest], traces: Sequence[tracer.Trace]) -> tracer.Trace | None:
        """The last pass, to draw when the script has ended and `last` is chosen (None when not kept)."""
        if not self.selection.last or not digests:
            return None
        final = max(d.index for d in digests)
        return next((t for t in traces if t.index == final and self.wanted(final)), None)


def _flags_of(digests: Sequence[PassDigest], index: int) -> tuple[str, ...]:
    """The health flags of pass `index` from the digests in pass order (the pass that just ended is among the
    newest: the search runs from the end); () without its digest."""
    for digest in reversed(digests):
        if digest.index == index:
            return digest.flags
        if digest.index < index:
            break
    return ()
