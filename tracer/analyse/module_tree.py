"""The recorded model's module hierarchy: paths, parents, depth below the model's root, and repeated blocks."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..model.records import Trace

UNKNOWN_CLASS = "?"  # a module path seen on a node but missing from Trace.modules (an older trace file)
_PART = re.compile(r"(\d+)")


def natural_key(path: str) -> tuple[tuple[int, str], ...]:
    """Sort key putting 'layers.2' before 'layers.10' (numbers compared as numbers)."""
    out: list[tuple[int, str]] = []
    for piece in _PART.split(path):
        if piece.isdigit():
            out.append((0, f"{int(piece):020d}"))
        elif piece:
            out.append((1, piece))
    return tuple(out)


@dataclass(frozen=True)
class Run:
    """Consecutive numbered siblings of one class: `layers.0` … `layers.11` (12 × TransformerEncoderLayer)."""

    parent: str
    cls: str
    first: int
    last: int

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(child_path(self.parent, str(i)) for i in range(self.first, self.last + 1))

    @property
    def name(self) -> str:
        """'model.layers.0–11'."""
        return f"{child_path(self.parent, str(self.first))}–{self.last}"

    def __len__(self) -> int:
        return self.last - self.first + 1


def child_path(parent: str, name: str) -> str:
    return f"{parent}.{name}" if parent else name


MIN_RUN = 3  # fewer repeated blocks than this are drawn one by one


class ModuleTree:
    """Every module path of a trace (from Trace.modules and the nodes' tags) with its class and place in the tree.

    Depth counts from the model's root (the module passed as `record(model=...)`, depth 0), whatever the root's
    own path is ('model', or '' when its variable name was not found).
    """

    def __init__(self, trace: Trace) -> None:
        classes = dict(trace.modules)
        for n in trace.nodes:
            if n.module is not None:
                for prefix in _prefixes(n.module):
                    classes.setdefault(prefix, UNKNOWN_CLASS)
        self.classes: dict[str, str] = classes
        self._parent: dict[str, str | None] = {p: self._find_parent(p) for p in classes}
        self.children: dict[str | None, list[str]] = {}
        for p in sorted(classes, key=natural_key):
            self.children.setdefault(self._parent[p], []).append(p)
        self._depth: dict[str, int] = {}
        todo = [(p, 0) for p in self.children.get(None, [])]
        while todo:
            p, d = todo.pop()
            self._depth[p] = d
            todo.extend((c, d + 1) for c in self.children.get(p, []))

    def _find_parent(self, path: str) -> str | None:
        if path == "":
            return None
        head = path
        while "." in head:
            head = head.rpartition(".")[0]
            if head in self.classes:
                return head
        return "" if "" in self.classes else None

    def __contains__(self, path: object) -> bool:
        return path in self.classes

    def __bool__(self) -> bool:
        return bool(self.classes)

    @property
    def roots(self) -> list[str]:
        return self.children.get(None, [])

    def parent(self, path: str) -> str | None:
        return self._parent.get(path)

    def depth(self, path: str) -> int:
        return self._depth[path]

    @property
    def deepest(self) -> int:
        return max(self._depth.values(), default=0)

    def chain(self, path: str) -> list[str]:
        """The path's ancestors from its root down to the path itself."""
        out = [path]
        parent = self._parent.get(path)
        while parent is not None:
            out.append(parent)
            parent = self._parent.get(parent)
        return out[::-1]

    def contains(self, outer: str, inner: str) -> bool:
        """Whether module `inner` is `outer` or lies inside it."""
        return outer == inner or (outer == "" and inner in self.classes) or inner.startswith(outer + ".")

    def descendants(self, path: str) -> list[str]:
        """The path and every module below it."""
        out = []
        todo = [path]
        while todo:
            p = todo.pop()
            out.append(p)
            todo.extend(self.children.get(p, []))
        return out

    def runs(self, paths: Iterable[str], shortest: int = MIN_RUN) -> list[Run]:
        """Among `paths`, the runs of at least `shortest` numbered siblings of one class with consecutive numbers."""
        numbered: dict[str, list[int]] = {}
        for p in paths:
            parent = self._parent.get(p)
            last = p[len(parent) + 1 :] if parent else p
            if parent is not None and last.isdigit() and str(int(last)) == last:
                numbered.setdefault(parent, []).append(int(last))
        out = []
        for parent, numbers in numbered.items():
            numbers.sort()
            start = 0
            for i in range(1, len(numbers) + 1):
                if i < len(numbers) and numbers[i] == numbers[i - 1] + 1 and self._same_class(parent, numbers, i):
                    continue
                if i - start >= shortest:
                    cls = self.classes[child_path(parent, str(numbers[start]))]
                    out.append(Run(parent, cls, numbers[start], numbers[i - 1]))
                start = i
        return sorted(out, key=lambda r: natural_key(r.paths[0]))

    def _same_class(self, parent: str, numbers: list[int], i: int) -> bool:
        a = self.classes[child_path(parent, str(numbers[i - 1]))]
        return a != UNKNOWN_CLASS and a == self.classes[child_path(parent, str(numbers[i]))]

    def default_depth(self) -> int:
        """Where the model's repeated blocks are (a transformer's layers, two or more); else the root's children."""
        by_depth: dict[int, list[str]] = {}
        for p, d in self._depth.items():
            by_depth.setdefault(d, []).append(p)
        for d in sorted(by_depth):
            if self.runs(by_depth[d], shortest=2):
                return d
        return min(1, self.deepest)


def _prefixes(path: str) -> list[str]:
    parts = path.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]
