"""Shared helpers of the notebook tests: execute a notebook in a real kernel of this interpreter, read its outputs.

Which Python runs the kernel: jupyter_client resolves the name 'python3' through the kernelspec directories
(JUPYTER_PATH, then — inside a virtualenv — the venv's share/jupyter/kernels, where ipykernel's wheel puts a
'python3' spec whose argv starts with the bare word "python", which jupyter_client replaces by sys.executable),
then the user's and the system's directories, and falls back to ipykernel's built-in spec. A 'python3' spec
elsewhere on JUPYTER_PATH, or a user-level one outside a venv, would win and could start another interpreter.
So the tests write their own spec, pinned to sys.executable, into a temporary directory and hand nbclient a
kernel manager that looks only there: no `ipykernel install` needed, and no other Python can be picked up.
The kernel inherits this process's environment (PYTHONPATH included), so it imports the same `tracer`.
"""

from __future__ import annotations

import json
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

KERNEL = "gradtrace-test-python"


def execute(nb: Any, cwd: Path, *, allow_errors: bool = False, timeout: int = 600) -> Any:
    """Run every cell of `nb` in a fresh kernel of this interpreter, in `cwd`; the notebook gets the outputs."""
    with tempfile.TemporaryDirectory(prefix="gradtrace-kernels-") as kernels:
        spec = Path(kernels) / KERNEL
        spec.mkdir()
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        kernel_json = {"argv": argv, "display_name": "Python 3 (ipykernel)", "language": "python"}
        (spec / "kernel.json").write_text(json.dumps(kernel_json), encoding="utf-8")
        km = AsyncKernelManager(kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=[kernels]))
        client = NotebookClient(
            nb,
            km=km,
            timeout=timeout,
            allow_errors=allow_errors,
            record_timing=False,  # no timestamps in the outputs: a committed notebook stays byte-stable
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
