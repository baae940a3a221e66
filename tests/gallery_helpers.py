"""The repository's gallery, run once per test session (every script, inside tracer.record())."""

from __future__ import annotations

import functools

from tests.cli_helpers import ROOT
from tracer.gallery.entries import Entry, Script, discover, run

GALLERY = ROOT / "gallery"


@functools.cache
def scripts() -> tuple[Script, ...]:
    return tuple(discover(GALLERY))


@functools.cache
def entries() -> dict[str, Entry]:
    return {s.id: run(s) for s in scripts()}


def script_ids() -> list[str]:
    return [s.id for s in scripts()]
