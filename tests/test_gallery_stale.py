"""The committed gallery matches its scripts: every pass's DOT, index.html and README.md regenerate byte for byte."""

from __future__ import annotations

from tests.gallery_helpers import GALLERY, entries
from tracer.gallery.builder import stale


def test_the_committed_gallery_is_current() -> None:
    problems = stale(GALLERY, entries=list(entries().values()))
    assert not problems, (
        "the committed gallery is stale (the scripts, the recorder or the renderer changed): run `./dev gallery` "
        "and commit gallery/.\n" + "\n".join(problems)
    )


def test_the_committed_outputs_carry_no_absolute_paths() -> None:
    for path in [GALLERY / "index.html", GALLERY / "README.md", *sorted((GALLERY / "out").rglob("*"))]:
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert str(GALLERY.parent) not in text, path
            assert "/home/" not in text and "/tmp/" not in text, path
