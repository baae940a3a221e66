"""Writing output files into a folder: atomically, listed in a manifest, never over a file we did not write.

Used by `gradtrace run` / `gradtrace render` (cli/outputs.py) and the gallery builder. A manifest is a small JSON
file in the folder, `{"format": FORMAT, "version": 1, "files": ...}`, listing what the writer wrote there; only
those files are ever replaced or removed without being asked to.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

MANIFEST_VERSION = 1


def temporary(path: Path) -> Path:
    """Where `path` is written before it is renamed into place: beside it, hidden, with the same suffix (the
    renderer picks the format by it)."""
    return path.with_name(f".~{path.name}")


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

    def read(self) -> dict[str, str]:
        """The files it lists; {} when it is missing, unreadable or another writer's."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        files = data.get("files") if isinstance(data, dict) and data.get("format") == self.format else None
        if isinstance(files, list) and self.listed:
            files = dict.fromkeys((f for f in files if isinstance(f, str)), "")
        if not isinstance(files, dict):
            return {}
        return {
            str(k): str(v) for k, v in files.items() if isinstance(k, str) and safe_name(k, subfolders=self.subfolders)
        }

    def text(self, files: Mapping[str, str]) -> str:
        listed: object = sorted(files) if self.listed else dict(sorted(files.items()))
        document = {"format": self.format, "version": MANIFEST_VERSION, "files": listed}
        return json.dumps(document, indent=1) + "\n"

    def write(self, files: Mapping[str, str]) -> None:
        """List `files` (OSError when it cannot be written)."""
        write_atomic(self.path, self.text(files).encode("utf-8"))


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
