"""Writing output files into a folder: atomically, listed in a manifest, never over a file we did not write.

Used by `gradtrace run` / `gradtrace render` (cli/outputs.py) and the gallery builder. A manifest is a small JSON
file in the folder, `{"format": FORMAT, "version": 1, "files": ...}`, listing what the writer wrote there; only
those files are ever replaced or removed without being asked to.

A writer that adds files one at a time while a program runs (`gradtrace run` writes each pass as it ends) appends
them to the manifest's journal, `MANIFEST.journal`, one JSON line per file: constant cost per file, and a run that
dies midway (os._exit, SIGKILL, out of memory) still owns what it wrote. Reading a manifest includes its journal;
writing the manifest whole folds the journal in and removes it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

MANIFEST_VERSION = 1


NAME_MAX = 255  # bytes in one file name on the common file systems (ext4, APFS, NTFS counts 255 characters)


def temporary(path: Path) -> Path:
    """Where `path` is written before it is renamed into place: beside it, hidden, with the same suffix (the
    renderer picks the format by it). A name too long to take the prefix gets a short hashed one instead."""
    name = f".~{path.name}"
    if len(os.fsencode(name)) > NAME_MAX:
        digest = hashlib.sha1(os.fsencode(path.name)).hexdigest()[:16]
        name = f".~{digest}{path.suffix[-16:]}"
    return path.with_name(name)


def write_atomic(path: Path, data: bytes) -> Path:
    """Write `data` as `path` through a temporary file and a rename: a reader sees the old file or the new one,
    never half of one. OSError when it cannot be written (the temporary file is removed)."""
    tmp = temporary(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    return path


def safe_name(name: str, *, subfolders: bool) -> bool:
    """A manifest entry a writer may touch: relative, inside the folder (no '..'), and with `subfolders=False`
    a plain file name."""
    if not subfolders:
        return bool(name) and "/" not in name and "\\" not in name
    parts = Path(name).parts
    return bool(parts) and not Path(name).is_absolute() and ".." not in parts


@dataclass(frozen=True)
class Manifest:
    """One manifest file: `format` names its writer; `files` is either a mapping (file name -> the source it
    came from) or, with `listed=True`, a sorted list of names (read back as name -> '')."""

    path: Path
    format: str
    listed: bool = False
    subfolders: bool = False  # whether entries may name files in folders below the manifest's

    @property
    def journal(self) -> Path:
        """Where files added one at a time are listed until the manifest is written whole."""
        return self.path.with_name(self.path.name + ".journal")

    def read(self) -> dict[str, str]:
        """The files it lists, its journal's included; {} when it is missing, unreadable or another writer's."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        files = data.get("files") if isinstance(data, dict) and data.get("format") == self.format else None
        if isinstance(files, list) and self.listed:
            files = dict.fromkeys((f for f in files if isinstance(f, str)), "")
        if not isinstance(files, dict):
            return {}
        listed = {str(k): str(v) for k, v in files.items() if isinstance(k, str)}
        listed.update(self._journal_entries())
        return {k: v for k, v in listed.items() if safe_name(k, subfolders=self.subfolders)}

    def _journal_entries(self) -> dict[str, str]:
        try:
            lines = self.journal.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return {}
        entries: dict[str, str] = {}
        for line in lines:  # the last line may be cut short by a run that died while writing it: skipped
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, list) and len(entry) == 2 and all(isinstance(e, str) for e in entry):
                entries[entry[0]] = entry[1]
        return entries

    def text(self, files: Mapping[str, str]) -> str:
        listed: object = sorted(files) if self.listed else dict(sorted(files.items()))
        document = {"format": self.format, "version": MANIFEST_VERSION, "files": listed}
        return json.dumps(document, indent=1) + "\n"

    def write(self, files: Mapping[str, str]) -> None:
        """List `files` (OSError when it cannot be written); the journal, now folded in, goes."""
        write_atomic(self.path, self.text(files).encode("utf-8"))
        self.journal.unlink(missing_ok=True)

    def append(self, files: Mapping[str, str]) -> None:
        """Add `files` to the journal (OSError when it cannot be written): one line each, cost independent of how
        many are listed already. The manifest itself must exist (write it first), or the journal is not read."""
        lines = "".join(json.dumps([name, source]) + "\n" for name, source in files.items())
        with open(self.journal, "a", encoding="utf-8") as journal:
            journal.write(lines)


def foreign(folder: Path, names: Iterable[str], ours: Iterable[str]) -> list[str]:
    """The names among `names` that exist in `folder` although no manifest lists them, in the order given."""
    mine = set(ours)
    return [n for n in names if n not in mine and (folder / n).exists()]


def in_the_way(folder: Path, taken: list[str], writer: str) -> str:
    """'PATH, PATH and 2 more already exist and WRITER did not write them' (the caller adds how to go on)."""
    shown = ", ".join(repr(str(folder / n)) for n in taken[:3])
    more = f" and {len(taken) - 3} more" if len(taken) > 3 else ""
    one = len(taken) == 1
    return f"{shown}{more} already exist{'s' if one else ''} and {writer} did not write {'it' if one else 'them'}"
