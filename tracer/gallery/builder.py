"""Build the gallery: run every example script inside tracer.record(), draw its passes, write the pages.

    import tracer.gallery
    result = tracer.gallery.build()            # the repository's gallery/, written in place
    tracer.gallery.stale()                     # [] when the committed DOT and pages match the scripts

Layout of a gallery folder (see entries.py for what a script may say to the builder):

    cases/TOPIC/ENTRY.py                 the scripts (input; never written)
    index.html, README.md                every entry with its explanation, script and pictures
    out/TOPIC/ENTRY/passK.svg|.dot|.html one picture, its DOT text and its step-by-step page per pass
    .gallery-manifest.json               the files the builder wrote: only those are ever replaced or removed

Everything written is deterministic (no dates, no absolute paths): DOT, index.html and README.md are byte-identical
between builds; SVG and the step pages depend on the Graphviz version as well.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..model.records import Trace
from ..render.draw import svg
from ..render.output_files import Manifest, foreign, in_the_way, write_atomic
from ..render.scene import shared_range
from ..render.shown_precision import mismatch
from ..render.stepper import page
from .entries import Entry, GalleryError, Pass, Script, discover, run
from .markdown import readme
from .page import EntryPage, PassFiles, index_html

__all__ = ["Build", "GalleryError", "GalleryResult", "build", "find_gallery", "stale"]

MANIFEST = ".gallery-manifest.json"
MANIFEST_FORMAT = "gradtrace.gallery"
NOTEBOOK = "notebook.ipynb"
OUT = "out"
TEXT_SUFFIXES = frozenset({".dot", ".svg", ".html", ".md"})  # kept as they are when equal at the shown precision


def find_gallery(folder: str | os.PathLike[str] | None = None) -> Path:
    """The gallery folder: `folder` when given, else the repository's gallery/ (next to the installed package),
    else ./gallery; GalleryError when there is none."""
    if folder is not None:
        path = Path(folder)
        if not (path / "cases").is_dir():
            raise GalleryError(
                f"{str(path)!r} is not a gallery folder: it has no cases/ folder with the example scripts "
                "(cases/TOPIC/ENTRY.py); pass the repository's gallery/ folder"
            )
        return path
    repository = Path(__file__).resolve().parents[2]  # tracer/gallery/builder.py -> the repository
    for candidate in (repository / "gallery", Path.cwd() / "gallery"):
        if (candidate / "cases").is_dir():
            return candidate
    raise GalleryError(
        "the gallery's example scripts were not found: they live in the gradtrace repository (gallery/cases/), "
        f"and neither the folder gradtrace is installed from ({repository}) nor the current folder has them. "
        "Run the command in a clone of the repository (`./dev gallery`), or name the folder with --source "
        "PATH/TO/gallery"
    )


@dataclass(frozen=True)
class GalleryResult:
    """What a build wrote: into `folder`, the entries, every file (relative, sorted) and the ones it removed."""

    folder: Path
    entries: tuple[Entry, ...]
    files: tuple[str, ...]
    removed: tuple[str, ...]
    size: int  # bytes written

    @property
    def passes(self) -> int:
        return sum(len(e.passes) for e in self.entries)


STEPPER_BUDGET = 500_000  # a step page holds one picture per step: steps × DOT characters of the pass, at most


def _graph_key(trace: Trace) -> tuple[Any, ...]:
    """What makes two passes the same graph (one kept with retain_graph): nodes, kinds, edges."""
    return tuple((n.name, n.executed, tuple((e.target, e.input_nr) for e in n.edges)) for n in trace.nodes)


@dataclass(frozen=True)
class _Planned:
    """One pass: its files, its DOT text, and whether its own step page is drawn."""

    entry: Entry
    p: Pass
    files: PassFiles
    dot: str
    drawing: dict[str, Any]  # the entry's drawing options, with the colour range its passes share

    @property
    def own_stepper(self) -> bool:
        return self.files.stepper is not None and self.files.stepper_pass == self.p.trace.index


def _plan(entries: list[Entry]) -> list[list[_Planned]]:
    """Every pass's files. Step pages: one per distinct graph of an entry (later passes over the same graph link
    to it), none for a pass whose page would be too large (more than STEPPER_BUDGET: steps × DOT size)."""
    planned = []
    for entry in entries:
        firsts: dict[tuple[Any, ...], int] = {}
        rows = []
        drawing = _shared_colours(entry)
        for p in entry.passes:
            t = p.trace
            stem = f"{OUT}/{entry.id}/pass{t.index}"
            dot = t.to_dot(**drawing)
            owner = firsts.setdefault(_graph_key(t), t.index)
            small = len(t.steps) * len(dot) <= STEPPER_BUDGET
            stepper = f"{OUT}/{entry.id}/pass{owner}.html" if small else None
            files = PassFiles(f"{stem}.svg", f"{stem}.dot", stepper, owner if small else None)
            rows.append(_Planned(entry, p, files, dot, drawing))
        planned.append(rows)
    return planned


def _shared_colours(entry: Entry) -> dict[str, Any]:
    """The entry's drawing options with one colour scale for all its passes (a norm has the same colour in each),
    unless the script fixed its own."""
    if "colour_range" in entry.drawing or len(entry.passes) < 2:
        return dict(entry.drawing)
    return {**entry.drawing, "colour_range": shared_range(p.trace for p in entry.passes)}


def _relative(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path.resolve(), start.resolve())).as_posix()


def _pages(planned: list[list[_Planned]], outdir: Path) -> list[EntryPage]:
    return [
        EntryPage(rows[0].entry, _relative(rows[0].entry.script.path, outdir), tuple(r.files for r in rows))
        for rows in planned
    ]


def _text_files(planned: list[list[_Planned]], outdir: Path, source: Path) -> dict[str, str]:
    listed = _pages(planned, outdir)
    notebook = source / NOTEBOOK
    link = _relative(notebook, outdir) if notebook.is_file() else None
    files = {r.files.dot: r.dot for rows in planned for r in rows}
    files["index.html"] = index_html(listed, notebook=link)
    files["README.md"] = readme(listed, notebook=link)
    return files


def _drawn_names(planned: list[list[_Planned]]) -> set[str]:
    names = {r.files.svg for rows in planned for r in rows}
    return names | {r.files.stepper for rows in planned for r in rows if r.own_stepper and r.files.stepper}


def _draw(rows: list[_Planned]) -> dict[str, bytes]:

    drawn = {}
    for r in rows:
        drawn[r.files.svg] = svg(r.p.trace, **r.drawing).encode("utf-8")
        if r.own_stepper and r.files.stepper is not None:
            drawn[r.files.stepper] = page(r.p.trace, **r.drawing).encode("utf-8")
    return drawn


@dataclass
class Build:
    """One build, done step by step so a caller can show progress: `for what in build.steps(): ...`.

    Nothing is written before every script has run and every picture is drawn; a failing script stops the build
    with GalleryError and leaves the folder as it was.
    """

    source: Path
    outdir: Path
    force: bool = False
    jobs: int = field(default_factory=lambda: max(2, os.cpu_count() or 2))
    scripts: list[Script] = field(init=False)
    result: GalleryResult | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.scripts = discover(self.source)

    @property
    def total(self) -> int:
        """How many steps `steps()` yields: one per script run, one per entry drawn, one for writing."""
        return 2 * len(self.scripts) + 1

    def steps(self) -> Iterator[str]:
        """Run, draw, write; yields what was just done ('ran 01-shapes/01-zero-d', ...)."""
        folder = _Folder(self.outdir, force=self.force)
        folder.check_free(self._planned_names())
        entries: list[Entry] = []
        for script in self.scripts:
            entries.append(run(script))
            yield f"ran {script.id}"
        planned = _plan(entries)
        files = {k: v.encode("utf-8") for k, v in _text_files(planned, self.outdir, self.source).items()}
        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            # One task per entry; the renderer runs a pass's step frames in parallel too.
            drawn = [pool.submit(_draw, rows) for rows in planned]
            for entry, future in zip(entries, drawn, strict=True):
                files.update(future.result())
                yield f"drew {entry.id}"
        folder.check_free(files)
        removed = folder.write(files)
        self.result = GalleryResult(
            self.outdir, tuple(entries), tuple(sorted(files)), tuple(removed), sum(len(v) for v in files.values())
        )
        yield f"wrote {len(files)} files"

    def _planned_names(self) -> list[str]:
        # Before running anything: the fixed names, and whatever is already under out/ for these entries.
        names = ["index.html", "README.md"]
        for script in self.scripts:
            folder = self.outdir / OUT / script.id
            if folder.is_dir():
                names += [_relative(p, self.outdir) for p in folder.iterdir() if p.is_file()]
        return names


def build(
    source: str | os.PathLike[str] | None = None,
    outdir: str | os.PathLike[str] | None = None,
    *,
    force: bool = False,
    progress: Callable[[str], Any] | None = None,
) -> GalleryResult:
    """Build the gallery from `source` (default: find_gallery()) into `outdir` (default: the source folder)."""
    folder = find_gallery(source)
    work = Build(folder, Path(outdir) if outdir is not None else folder, force=force)
    for what in work.steps():
        if progress is not None:
            progress(what)
    assert work.result is not None
    return work.result


def stale(
    source: str | os.PathLike[str] | None = None,
    outdir: str | os.PathLike[str] | None = None,
    *,
    entries: list[Entry] | None = None,
) -> list[str]:
    """What in the written gallery does not match its scripts: every DOT, index.html and README.md is regenerated
    (no Graphviz needed) and compared at the precision it shows (words exactly, numbers to about 4 significant
    digits: another CPU rounds last bits differently); missing and left-over files count too. [] when current.
    `entries`: the scripts already run (default: run them now)."""
    folder = find_gallery(source)
    target = Path(outdir) if outdir is not None else folder
    if entries is None:
        entries = [run(script) for script in discover(folder)]
    planned = _plan(entries)
    expected = _text_files(planned, target, folder)
    problems = []
    for name, text in sorted(expected.items()):
        path = target / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif (why := mismatch(path.read_text(encoding="utf-8", errors="replace"), text)) is not None:
            problems.append(f"{name} differs from what the scripts give now ({why})")
    drawn = _drawn_names(planned)
    problems += [f"{name} is missing" for name in sorted(drawn) if not (target / name).is_file()]
    written = _Folder(target).previous()
    problems += [
        f"{name} is left over from an entry or pass that no longer exists"
        for name in sorted(written - set(expected) - drawn)
    ]
    return problems


def _same_as_shown(path: Path, data: bytes) -> bool:
    """The file holds this text already, at the precision it shows (render/shown_precision.py)."""
    if path.suffix not in TEXT_SUFFIXES or not path.is_file():
        return False
    old = path.read_bytes()
    if old == data:
        return True
    try:
        return mismatch(old.decode("utf-8"), data.decode("utf-8")) is None
    except UnicodeDecodeError:
        return False


class _Folder:
    """The output folder: writes the files, removes the previous build's files not written again, and never
    replaces a file the builder did not write (unless force=True)."""

    def __init__(self, folder: Path, *, force: bool = False) -> None:
        self.folder = folder
        self.force = force
        self.manifest = Manifest(folder / MANIFEST, MANIFEST_FORMAT, listed=True, subfolders=True)

    def previous(self) -> set[str]:
        return set(self.manifest.read())

    def check_free(self, names: Any) -> None:
        if self.force:
            return
        taken = sorted(foreign(self.folder, names, self.previous()))
        if taken:
            raise GalleryError(
                f"{in_the_way(self.folder, taken, 'the gallery builder')} (they are not in {MANIFEST}); pass "
                "force=True (--force) to replace them, or choose another output folder"
            )

    def write(self, files: dict[str, bytes]) -> list[str]:
        old = self.previous()
        try:
            for name, data in sorted(files.items()):
                path = self.folder / name
                if _same_as_shown(path, data):
                    continue  # another CPU's last bits: keep the committed file, so a rebuild is no diff
                path.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(path, data)
            removed = sorted(old - set(files))
            for name in removed:
                (self.folder / name).unlink(missing_ok=True)
            self._prune(removed)
            self.manifest.write(dict.fromkeys(files, ""))
        except OSError as exc:
            raise GalleryError(f"cannot write the gallery into {str(self.folder)!r}: {exc.strerror or exc}") from None
        return removed

    def _prune(self, removed: list[str]) -> None:
        """Remove folders under out/ that the removed files left empty."""
        out = (self.folder / OUT).resolve()
        for name in removed:
            parent = (self.folder / name).parent.resolve()
            while parent != out and out in parent.parents and parent.is_dir() and not any(parent.iterdir()):
                shutil.rmtree(parent)
                parent = parent.parent
