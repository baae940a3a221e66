"""The output folder: file names, formats, atomic writes, and the never-overwrite-what-is-not-ours rule.

gradtrace keeps a small manifest (`.gradtrace-manifest.json`, one per rank under torch.distributed) listing
the files it wrote in the folder. Those may be replaced; any other existing file is left alone unless the user
passes --force. Files from an earlier run of the same source that this run did not write again are removed,
so the folder always shows one run.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # runtime import not needed: keeps `gradtrace --help` free of torch
    import tracer
    from tracer.render.output_files import Manifest

FORMATS = ("svg", "json", "html", "dot", "png", "pdf")
# The longest file-name stem taken from a script's name, in bytes: with the rest of the longest name gradtrace
# writes ('.rank123.pass12345.cell678-step0123.html' and the temporary file's '.~') it stays far below the
# 255 bytes file systems allow.
STEM_MAX = 120
DEFAULT_FORMATS = ("svg", "json")
NEEDS_GRAPHVIZ = frozenset({"svg", "png", "pdf", "html"})
MANIFEST_FORMAT = "gradtrace.outputs"


class OutputError(Exception):
    """An output cannot be written: the folder is not writable, or a file that is not ours is in the way."""


def parse_formats(values: Iterable[str]) -> tuple[str, ...]:
    """'svg,json' (and repeated --format values) -> ('svg', 'json'); ValueError names an unknown format."""
    chosen: list[str] = []
    for value in values:
        for part in value.split(","):
            fmt = part.strip().lower().lstrip(".")
            if not fmt:
                continue
            if fmt not in FORMATS:
                raise ValueError(f"unknown format: {part.strip()!r} (must be one of {list(FORMATS)})")
            if fmt not in chosen:
                chosen.append(fmt)
    return tuple(chosen) or DEFAULT_FORMATS


def display_name(name: str) -> str:
    """A file name as text that can be printed and written anywhere: bytes that are not UTF-8 (which Python holds
    as lone surrogates) shown as \\xNN escapes, control characters as \\n, \\x1b, ... ('bad\\xffname.py')."""
    raw = os.fsencode(name).decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in raw)


def file_stem(source: Path) -> str:
    """The script's stem as output files use it: the stem itself when it is printable UTF-8 of at most STEM_MAX
    bytes (train.py -> 'train'); otherwise made valid (each unprintable character or byte becomes '_') and
    shortened, plus '-' and 8 hex digits of a hash of the full name, so the name stays readable, the same on every
    run, and different for two scripts that differ only in what was replaced or cut."""
    stem = source.stem
    clean = "".join(
        "_" if not c.isprintable() or unicodedata.category(c) in ("Cs", "Co", "Cn") else c
        for c in os.fsencode(stem).decode("utf-8", "replace").replace("\ufffd", "_")
    )
    if clean == stem and len(os.fsencode(stem)) <= STEM_MAX:
        return stem
    digest = hashlib.sha256(os.fsencode(source.name)).hexdigest()[:8]
    short = clean.encode("utf-8")[: STEM_MAX - len(digest) - 1].decode("utf-8", "ignore")
    return f"{short}-{digest}"


def default_outdir(source: Path) -> Path:
    """Where outputs go without -o: a folder next to the script, e.g. train_gradtrace/ for train.py."""
    return source.parent / f"{file_stem(source)}_gradtrace"


def rank_part(rank: int | None) -> str:
    return "" if rank is None else f".rank{rank}"


def pass_stem(source_stem: str, trace: tracer.Trace, rank: int | None) -> str:
    """'train.pass3', 'train.rank1.pass3', or for a notebook pass 'lesson.pass3.cell7'."""
    cell = re.match(r"cell (\d+)(?: · |$)", trace.label or "")  # a torch.func pass adds " · torch.func.grad"
    suffix = f".cell{cell.group(1)}" if cell else ""
    return f"{source_stem}{rank_part(rank)}.pass{trace.index}{suffix}"


def index_name(rank: int | None) -> str:
    return f"index{rank_part(rank)}.html"


def manifest_name(rank: int | None) -> str:
    return f".gradtrace-manifest{rank_part(rank)}.json"


def manifest(path: Path) -> Manifest:
    """The manifest at `path`: file name -> the source it came from, files of this folder only."""
    from tracer.render.output_files import Manifest

    return Manifest(path, MANIFEST_FORMAT)


def check_writable_folder(folder: Path) -> None:
    """Fail before any work when `folder` cannot be created or written (it is created only when writing)."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise OutputError(
            f"cannot write to {str(folder)!r}: {str(probe)!r} is a file, not a folder; choose another folder with -o"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(
            f"cannot write to {str(folder)!r}: no permission to write in {str(probe)!r}; "
            "choose a folder you can write to with -o"
        )


class OutputFolder:
    """One run's outputs in one folder: checks names against the manifests, writes atomically, records them."""

    def __init__(self, folder: Path, source: str, *, rank: int | None = None, force: bool = False) -> None:
        self.folder = folder
        self.source = source  # the script / notebook / trace the files come from (manifest value)
        self.rank = rank
        self.force = force
        self.written: list[str] = []
        self.previous: dict[str, str] = {}  # the manifest as it was before this run
        self._ours: set[str] = set()  # while streaming: the names any manifest lists, and those claimed

    # -- what is ours

    def ours(self) -> set[str]:
        """Every file name a gradtrace manifest in the folder lists (any rank)."""
        names: set[str] = set()
        if self.folder.is_dir():
            for path in sorted(self.folder.glob(".gradtrace-manifest*.json")):
                names.update(manifest(path).read())
                names.update((path.name, manifest(path).journal.name))
        return names

    def check_free(self, names: Iterable[str]) -> None:
        """Raise OutputError when one of `names` exists and gradtrace did not write it (unless --force)."""
        if self.force:
            return
        from tracer.render.output_files import foreign, in_the_way

        taken = foreign(self.folder, names, self.ours())
        if taken:
            raise OutputError(
                f"{in_the_way(self.folder, taken, 'gradtrace')}; pass --force to replace, or choose another folder "
                "with -o"
            )

    def check_before_run(self, source_stem: str) -> None:
        """Before running anything: the folder is writable, and no foreign file has a name this run may use."""
        check_writable_folder(self.folder)
        if not self.folder.is_dir():
            return
        pattern = re.compile(rf"^{re.escape(source_stem)}{re.escape(rank_part(self.rank))}\.pass\d+[.-]")
        candidates = [p.name for p in self.folder.iterdir() if pattern.match(p.name)]
        self.check_free([*candidates, index_name(self.rank)])

    # -- writing

    def _prepare(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(
                f"cannot create the output folder {str(self.folder)!r}: {exc.strerror or exc}; "
                "choose another folder with -o"
            ) from None

    def _commit(self, tmp: Path, name: str) -> Path:
        final = self.folder / name
        os.replace(tmp, final)
        self.written.append(name)
        return final

    def write_text(self, name: str, text: str, *, record: bool = True) -> Path:
        # a lone surrogate (a non-UTF-8 byte of a file name) is written visibly, as an escape, never an error
        return self.write_bytes(name, text.encode("utf-8", "backslashreplace"), record=record)

    def write_bytes(self, name: str, data: bytes, *, record: bool = True) -> Path:
        from tracer.render.output_files import write_atomic

        self._prepare()
        try:
            path = write_atomic(self.folder / name, data)
        except OSError as exc:
            raise OutputError(f"cannot write {str(self.folder / name)!r}: {exc.strerror or exc}") from None
        if record:
            self.written.append(name)
        return path

    def save_trace(self, name: str, trace: tracer.Trace, options: dict[str, Any]) -> Path:
        """Write `trace` as `name`; the format follows the suffix. JSON is the library's own to_json()."""
        if name.endswith(".json"):
            return self.write_text(name, trace.to_json())
        from tracer.render.output_files import temporary

        self._prepare()
        tmp = temporary(self.folder / name)
        try:
            trace.save(tmp, **options)
            return self._commit(tmp, name)
        except OSError as exc:
            raise OutputError(f"cannot write {str(self.folder / name)!r}: {exc.strerror or exc}") from None
        finally:
            tmp.unlink(missing_ok=True)

    def save_frames(self, name: str, trace: tracer.Trace, options: dict[str, Any]) -> list[str]:
        """One picture per executed step of `trace`, named as the renderer names frames (pass1-step01.svg)."""
        from tracer.render.frames import frame_paths, frames

        pictures = frames(trace, name.rsplit(".", 1)[-1], **options)  # the renderer runs several dot at once
        names = [p.name for p in frame_paths(Path(name), len(pictures))]
        for frame_name, data in zip(names, pictures, strict=True):
            self.write_bytes(frame_name, data)
        return names

    def _manifest(self) -> Manifest:
        return manifest(self.folder / manifest_name(self.rank))

    def _write_manifest(self, files: dict[str, str]) -> None:
        self._prepare()
        try:
            self._manifest().write(files)
        except OSError as exc:
            path = self.folder / manifest_name(self.rank)
            raise OutputError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None

    def begin(self, planned: Iterable[str]) -> None:
        """List the files about to be written before writing them, so an interrupted run still owns them."""
        self.check_free(planned)
        self.previous = self._manifest().read()
        self._write_manifest({**self.previous, **dict.fromkeys(planned, self.source)})

    def begin_stream(self) -> None:
        """Start a run whose files are named one pass at a time (`claim`): the manifest as it was is rewritten
        (folding in the journal of a run that died, whose temporary files go), and what is ours is read once."""
        from tracer.render.output_files import temporary

        self.previous = self._manifest().read()
        for name in self.previous:  # a run killed while writing a file leaves its temporary file: ours to remove
            temporary(self.folder / name).unlink(missing_ok=True)
        self._write_manifest(self.previous)
        self._ours = self.ours()

    def claim(self, names: list[str]) -> None:
        """Before writing `names`: check that none is a file we did not write, then list them in the manifest's
        journal, so a run that dies right after still owns them. Costs the same for the 1st pass and the 10,000th."""
        if not self.force:
            from tracer.render.output_files import in_the_way

            taken = [n for n in names if n not in self._ours and (self.folder / n).exists()]
            if taken:
                raise OutputError(
                    f"{in_the_way(self.folder, taken, 'gradtrace')}; pass --force to replace, or choose another "
                    "folder with -o"
                )
        self._ours.update(names)
        try:
            self._manifest().append(dict.fromkeys(names, self.source))
        except OSError as exc:
            path = self._manifest().journal
            raise OutputError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None

    def finish(self, *, replace_run: bool) -> list[str]:
        """Record the files written; with `replace_run`, remove the earlier run's files not written again."""
        stale = []
        if replace_run:
            stale = sorted(n for n, src in self.previous.items() if src == self.source and n not in self.written)
            for name in stale:
                (self.folder / name).unlink(missing_ok=True)
        files = {n: s for n, s in self.previous.items() if n not in stale and (self.folder / n).exists()}
        files.update(dict.fromkeys(self.written, self.source))
        self._write_manifest(files)
        return stale
