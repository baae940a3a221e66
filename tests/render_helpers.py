"""Shared helpers of the renderer tests: real traces of tutorial cases and SVG/HTML inspection."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import torch

import tracer
from tests.cases import CASES, Case
from tracer import Trace

SVG = "{http://www.w3.org/2000/svg}"
CASE_BY_ID = {c.id: c for c in CASES}


def case_trace(case_id: str) -> tuple[Trace, dict[str, torch.Tensor], torch.Tensor]:
    """A real trace of a tutorial case, its leaves (with .grad filled by the pass) and its output.

    `source` (this file's line) is dropped so golden files do not change when test files move lines.
    """
    case: Case = CASE_BY_ID[case_id]
    leaves = case.leaves()
    y = case.forward(leaves)
    t = tracer.trace(y, case.seed(y), names=leaves)
    return dataclasses.replace(t, source=None), leaves, y


def svg_root(text: str) -> ET.Element:
    return ET.fromstring(text)


def groups(root: ET.Element) -> dict[str, ET.Element]:
    """SVG groups by id (our DOT ids: seed0, n1, e1_0, ...)."""
    return {g.attrib["id"]: g for g in root.iter(f"{SVG}g") if "id" in g.attrib}


def texts(group: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in group.iter(f"{SVG}text")]


def title(group: ET.Element) -> str:
    node = group.find(f"{SVG}title")
    assert node is not None and node.text is not None
    return node.text


VOID = {"meta", "input", "br", "img", "link", "hr", "source", "wbr", "area", "base", "col", "embed", "track"}
SVG_VOID_OK = {"path", "polygon", "polyline", "ellipse", "circle", "line", "rect", "stop"}


class TagBalance(HTMLParser):
    """Checks that every element of an HTML page is closed in order (a strict parse of our own output)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.ids: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.ids += [v for k, v in attrs if k == "id" and v is not None]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.ids += [v for k, v in attrs if k == "id" and v is not None]

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()


def check_html(page: str) -> TagBalance:
    parser = TagBalance()
    parser.feed(page)
    parser.close()
    assert not parser.errors, parser.errors[:5]
    assert not parser.stack, f"unclosed: {parser.stack}"
    return parser
