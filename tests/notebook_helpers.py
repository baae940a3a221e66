"""Shared helpers of the notebook tests: execute a notebook in a real kernel of this interpreter, read its outputs.

Which Python runs the kernel: jupyter_client resolves a kernel name through the kernelspec directories — first
those on JUPYTER_PATH, then (inside a virtualenv) the venv's share/jupyter/kernels, where ipykernel's wheel puts a
'python3' spec whose argv starts with the bare word "python" (jupyter_client replaces it by sys.executable), then
the user's and the system's directories — and falls back to ipykernel's built-in 'python3' spec. So 'python3'
does run this venv's Python in a fresh venv, but a 'python3' spec on JUPYTER_PATH (or a user-level one outside a
venv) would win and could start another interpreter. The tests therefore write their own spec, pinned to
sys.executable, into a temporary directory put first on JUPYTER_PATH: no `ipykernel install` needed, and no
other Python can be picked up. nbclient creates (and shuts down) the kernel manager itself. The kernel inherits
this process's environment (PYTHONPATH included), so it imports the same `tracer`.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import nbformat
from nbclient import NotebookClient

KERNEL = "gradtrace-test-python"


def execute(nb: Any, cwd: Path, *, allow_errors: bool = False, timeout: int = 600) -> Any:
    """Run every cell of `nb` in a fresh kernel of this interpreter, in `cwd`; the notebook gets the outputs."""
    with tempfile.TemporaryDirectory(prefix="gradtrace-kernels-") as kernels:
        spec = Path(kernels) / "kernels" / KERNEL
        spec.mkdir(parents=True)
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        kernel_json = {"argv": argv, "display_name": "Python 3 (ipykernel)", "language": "python"}
        (spec / "kernel.json").write_text(json.dumps(kernel_json), encoding="utf-8")
        path = os.pathsep.join(p for p in (kernels, os.environ.get("JUPYTER_PATH")) if p)
        # The user's IPython profile and Jupyter config (startup files, display settings) must not change the
        # outputs, and nothing is written to the home folder: all of it lives in the temporary directory.
        private = {name: str(Path(kernels) / name.lower()) for name in ("IPYTHONDIR", "JUPYTER_CONFIG_DIR")}
        private["JUPYTER_RUNTIME_DIR"] = str(Path(kernels) / "runtime")
        with mock.patch.dict(os.environ, {"JUPYTER_PATH": path, **private}):
            client = NotebookClient(
                nb,
                kernel_name=KERNEL,
                timeout=timeout,
                allow_errors=allow_errors,
                record_timing=False,  # no timestamps in the outputs: a committed notebook stays byte-stable
                coalesce_streams=True,  # one stdout output per cell, however the kernel happened to flush it
                resources={"metadata": {"path": str(cwd)}},
            )
            client.execute()
    return nb


def code_cell(source: str) -> Any:
    return nbformat.v4.new_code_cell(source)


def new_notebook(*sources: str) -> Any:
    nb = nbformat.v4.new_notebook()
    nb.cells = [code_cell(s) for s in sources]
    return nb


def outputs(cell: Any) -> list[Any]:
    return list(cell.get("outputs", []))


def data_of(cell: Any, mime: str) -> list[str]:
    """Every `mime` payload of a cell's display data and results, in order."""
    found = []
    for out in outputs(cell):
        data = out.get("data", {})
        if mime in data:
            value = data[mime]
            found.append(value if isinstance(value, str) else "".join(value))
    return found


def stream_text(cell: Any) -> str:
    return "".join(out["text"] for out in outputs(cell) if out["output_type"] == "stream")


def errors(cell: Any) -> list[Any]:
    return [out for out in outputs(cell) if out["output_type"] == "error"]


def svg_roots(cell: Any) -> Iterator[ET.Element]:
    for text in data_of(cell, "image/svg+xml"):
        yield ET.fromstring(text)
