"""--names VAR: leaves named after variables of the running script or notebook, looked up when each pass starts."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Mapping
from typing import Any

_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def check_paths(paths: tuple[str, ...]) -> tuple[str, ...]:
    """The --names values, each a variable or a dotted attribute path (`model`, `trainer.model`)."""
    for path in paths:
        if not _PATH.match(path):
            raise ValueError(
                f"--names {path!r} is not a variable name or a dotted path of them: give the name the script "
                "uses, e.g. --names model or --names trainer.model"
            )
    return paths


class MainVariables(Mapping[str, Any]):
    """A `names=` mapping for tracer.record() whose values are read from the program's `__main__` namespace.

    The recorder reads names= when each backward pass starts; the script's variables exist only by then, and
    may be rebound between passes, so every lookup goes to `sys.modules['__main__']` afresh. A path that does
    not resolve (yet), or to something that is neither a tensor nor an nn.Module, is left out of that pass and
    remembered, so the command can say so at the end instead of breaking the user's backward pass.
    """

    def __init__(self, paths: tuple[str, ...]) -> None:
        self.paths = paths
        self.found: set[str] = set()  # paths that named something in at least one pass

    def _resolve(self, path: str) -> Any:
        import torch

        main = sys.modules.get("__main__")
        head, *rest = path.split(".")
        value: Any = vars(main).get(head) if main is not None else None
        for attribute in rest:
            value = getattr(value, attribute, None)
        return value if isinstance(value, torch.Tensor | torch.nn.Module) else None

    def __getitem__(self, path: str) -> Any:
        value = self._resolve(path) if path in self.paths else None
        if value is None:
            raise KeyError(path)
        return value

    def __iter__(self) -> Iterator[str]:
        for path in self.paths:
            if self._resolve(path) is not None:
                self.found.add(path)
                yield path

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def missing(self) -> list[str]:
        """Paths that never named a tensor or module in any pass: most likely a typo."""
        return [p for p in self.paths if p not in self.found]
