"""`python -m tracer.native` prints its status and nothing else: no runpy "found in sys.modules after import of
package 'tracer', but prior to execution of 'tracer.native'" RuntimeWarning (issue 17). That warning comes when
importing the package already imports the module run with -m; tracer.native is the command's entry only (the
build and load live in tracer/record/native/loader.py), so nothing of the package may import it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_python_m_tracer_native_writes_no_warning() -> None:
    done = subprocess.run(
        [sys.executable, "-W", "default", "-m", "tracer.native", "--status"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("native recorder: "), done.stdout
    assert "found in sys.modules" not in done.stderr
    assert done.stderr == "", done.stderr


def test_nothing_of_the_package_imports_the_entry() -> None:
    """The cause, checked directly: after importing tracer, every room and the command line, tracer.native
    is still unimported (so runpy runs it fresh)."""
    code = (
        "import pkgutil, importlib, sys, tracer, cli\n"
        "for package in (tracer, cli):\n"
        "    for m in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
        "        if m.name != 'tracer.native' and not m.name.endswith('__main__'):\n"
        "            importlib.import_module(m.name)\n"
        "print('tracer.native' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
